# CLIP-ReID on MARS, video clips through the image model (their video
# setting, as TF-CLIP compares with it): the T = 8 frames of a clip share
# its camera and their features are averaged; the test embedding of a
# tracklet is the mean over its dense clips. Data, SIE (6 cameras) and the
# stage-2 schedule are TF-CLIP's MARS recipe; stage 1 is CLIP-ReID's, on
# each training tracklet's dense clips (their mean).
_base_ = [
    '../_base_/models/clipreid_vit-b16.py', '../_base_/datasets/mars.py',
    '../_base_/schedules/tfclip_adam-5e-6_80e.py',
    '../_base_/default_runtime.py'
]

model = dict(
    # The TF-CLIP authors' MARS loader normalises with ImageNet's mean/std.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    backbone=dict(num_cams=6, sie_coef=1.0),
    head=dict(num_classes=625))
# tfclip_adam-5e-6_80e names TF-CLIP's classifiers; CLIP-ReID has none of
# those (and LARGE_FC_LR is off in their recipe), so only the name rule for
# biases stays.
optim_wrapper = dict(
    paramwise_cfg=dict(_delete_=True, bias_lr_mult=2.0, bias_decay_mult=1.0))

custom_hooks = [
    dict(
        type='PromptLearningHook',
        pipeline={{_base_.test_pipeline}},
        max_epochs=120,
        batch_size=64,
        optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=1e-4),
        lr_min=1e-6,
        warmup_lr_init=1e-5,
        warmup_epochs=5)
]
