# TF-CLIP ablation, main paper Table 2 row 6 (supplement Table 4, B6; also
# Table 3 A6): the full model, CLIP-Memory + SSP + TMD. Nothing changes; the
# file completes the table and gives the run its own work_dir.
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']
