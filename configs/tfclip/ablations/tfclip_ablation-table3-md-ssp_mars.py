# TF-CLIP ablation completing supplement Table 3 (a row the paper does not
# report): the CLIP-Memory, SSP and TMD with MD only (no TMC: the message
# tokens do not attend to each other).
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

model = dict(neck=dict(with_tmc=False))
