# TF-CLIP ablation, supplement Table 3 A5: the CLIP-Memory, SSP and TMD with
# TMC only (no MD: a frame's feature is the mean of its tokens plus its
# message token).
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

model = dict(neck=dict(with_md=False))
