# TF-CLIP on PRID-2011 with the authors' recipe; see configs/tfclip/README.md.
_base_ = ['./tfclip/tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_prid2011.py']
