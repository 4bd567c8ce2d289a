# TF-CLIP ablation, main paper Table 2 row 3 (supplement Table 4, B3; also
# Table 3 A4 and Table 6 N=2): the CLIP-Memory with SSP, no temporal neck
# (the test embedding is [class 768, projected class 512]).
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

model = dict(
    neck=None, head=dict(with_temporal=False, embedding_parts=('cls', 'proj')))
