# TF-CLIP ablation, supplement Table 7 "Model B2 w/o CLIP-M": Table 2 row 2
# without the CLIP-Memory, i.e. without any memory loss (the paper's V2M,
# our loss_i2t) and no SSP; only the ID and triplet losses on the class and
# projected class features remain. No memory to build: no CLIPMemoryHook.
_base_ = ['./tfclip_ablation-table2-row2-memory_mars.py']

model = dict(head=dict(loss_i2t=None))
custom_hooks = []
