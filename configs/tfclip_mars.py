# TF-CLIP on MARS with the authors' recipe; see configs/tfclip/README.md.
#   tools/dist_train.sh configs/tfclip_mars.py 1
_base_ = ['./tfclip/tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']
