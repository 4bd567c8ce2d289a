# TF-CLIP ablation, supplement Table 6: SSP with N = 1 layers (the full
# model has 2), on the model of Table 6, i.e. CLIP-Memory + SSP without TMD
# (Table 2 row 3).
_base_ = ['./tfclip_ablation-table2-row3-memory-ssp_mars.py']

model = dict(head=dict(ssp=dict(num_layers=1)))
