# TF-CLIP ablation, main paper Table 2 row 2 (supplement Table 4, B2; also
# Table 3 A1): the CLIP-Memory only. No SSP (the logits score the frozen
# memory as it is), no temporal neck (TMD), so no temporal and frame
# features: the test embedding is [class 768, projected class 512].
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

model = dict(
    neck=None,
    head=dict(with_temporal=False, ssp=None, embedding_parts=('cls', 'proj')))
