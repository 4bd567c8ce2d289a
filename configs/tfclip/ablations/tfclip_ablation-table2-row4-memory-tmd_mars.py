# TF-CLIP ablation, main paper Table 2 row 4 (supplement Table 4, B4; also
# Table 3 A3 and the TMD row of Table 5): the CLIP-Memory and TMD, no SSP.
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

model = dict(head=dict(ssp=None))
