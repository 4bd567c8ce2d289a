# TF-CLIP ablation, supplement Table 3 A2: the CLIP-Memory and TMD with TMC
# only (the message tokens attend to each other but are not diffused into
# the frames' tokens; a frame's feature is the mean of its tokens plus its
# message token), no SSP.
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

model = dict(neck=dict(with_md=False), head=dict(ssp=None))
