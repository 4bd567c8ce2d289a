# TF-CLIP ablation, supplement Table 5 (temporal fusion, on the CLIP-Memory
# model without SSP): temporal average pooling of the frames' token means
# in place of TMD. The paper's TAP row has the parameters and numbers of the
# model without any temporal branch (Table 2 row 2); here the temporal
# branch of the head stays, so that only the fusion differs from TMD.
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

model = dict(
    neck=dict(
        _delete_=True,
        type='TemporalAvgPool',
        embed_dims=768,
        num_frames={{_base_.clip_len}},
        detach_input=True),
    head=dict(ssp=None))
