# TF-CLIP ablation, supplement Table 7 "Model B4 w/o CLIP-M": Table 2 row 4
# (TMD, no SSP) without the CLIP-Memory, i.e. without any memory loss (the
# paper's V2M, our loss_i2t). SSP adapts the memory and goes with it, so
# this is also the full model without memory. No CLIPMemoryHook.
_base_ = ['./tfclip_ablation-table2-row4-memory-tmd_mars.py']

model = dict(head=dict(loss_i2t=None))
custom_hooks = []
