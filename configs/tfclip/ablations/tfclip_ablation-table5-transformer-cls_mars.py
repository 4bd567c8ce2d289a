# TF-CLIP ablation, supplement Table 5 "Transf_cls": the temporal transformer
# of tfclip_ablation-table5-transformer_mars.py with the sequence feature
# taken from a learned class token.
_base_ = ['./tfclip_ablation-table5-transformer_mars.py']

model = dict(neck=dict(with_cls_token=True))
