# TF-CLIP ablation, supplement Table 5 (temporal fusion, on the CLIP-Memory
# model without SSP): a depth-wise 1-D temporal convolution (kernel 3,
# shift-initialised, residual) in place of TMD.
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

model = dict(
    neck=dict(
        _delete_=True,
        type='TemporalConv1d',
        embed_dims=768,
        num_frames={{_base_.clip_len}},
        kernel_size=3,
        detach_input=True),
    head=dict(ssp=None))
