# TF-CLIP on LS-VID (Li et al., ICCV 2019): 842 training identities, 15
# cameras; training tracklets cut into chunks of 48 frames as the authors
# do. The MARS recipe of the authors (their code uses one config for every
# dataset).
_base_ = [
    '../_base_/models/tfclip_vit-b16.py', '../_base_/datasets/lsvid.py',
    '../_base_/schedules/tfclip_adam-5e-6_80e.py',
    '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(num_cams=15),
    neck=dict(num_frames={{_base_.clip_len}}),
    head=dict(num_classes=842))

custom_hooks = [dict(type='CLIPMemoryHook', pipeline={{_base_.test_pipeline}})]
