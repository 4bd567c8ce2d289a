# TF-CLIP ablation, supplement Table 5 "Transf" (temporal fusion, on the
# CLIP-Memory model without SSP): a temporal transformer over the frames in
# place of TMD, the sequence feature being the mean of its outputs. 6
# blocks as the authors' (theirs were 512 wide, on the projected class
# tokens; these are 768 wide, on the frames' token means).
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

model = dict(
    neck=dict(
        _delete_=True,
        type='TemporalTransformer',
        embed_dims=768,
        num_layers=6,
        num_heads=12,
        num_frames={{_base_.clip_len}},
        with_cls_token=False,
        detach_input=True),
    head=dict(ssp=None))
