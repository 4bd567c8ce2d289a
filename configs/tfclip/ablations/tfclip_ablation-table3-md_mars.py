# TF-CLIP ablation completing supplement Table 3 (a row the paper does not
# report): the CLIP-Memory and TMD with MD only (each frame's message token
# is diffused into its tokens without seeing the other frames' messages),
# no SSP.
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

model = dict(neck=dict(with_tmc=False), head=dict(ssp=None))
