# TF-CLIP on MARS: 625 training identities, 6 cameras (SIE on), clips of
# T = 8 frames of 256 x 128, the authors' recipe on one GPU (16 sequences
# per batch, Adam 5e-6, 80 epochs).
_base_ = [
    '../_base_/models/tfclip_vit-b16.py', '../_base_/datasets/mars.py',
    '../_base_/schedules/tfclip_adam-5e-6_80e.py',
    '../_base_/default_runtime.py'
]

model = dict(
    backbone=dict(num_cams=6),
    neck=dict(num_frames={{_base_.clip_len}}),
    head=dict(num_classes=625))

# Before training, the pretrained encoder embeds the training set (dense
# clips as in testing, no camera embedding): one memory entry per identity.
custom_hooks = [dict(type='CLIPMemoryHook', pipeline={{_base_.test_pipeline}})]
