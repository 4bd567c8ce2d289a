# TF-CLIP on PRID-2011 (Hirzer et al., SCIA 2011): 89 training persons per
# split, 2 cameras; split 0 of 10 (tools/train_splits.py runs all). The MARS
# recipe of the authors (their code uses one config for every dataset).
_base_ = [
    '../_base_/models/tfclip_vit-b16.py', '../_base_/datasets/prid2011.py',
    '../_base_/schedules/tfclip_adam-5e-6_80e.py',
    '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(num_cams=2),
    neck=dict(num_frames={{_base_.clip_len}}),
    head=dict(num_classes=89))

custom_hooks = [dict(type='CLIPMemoryHook', pipeline={{_base_.test_pipeline}})]
