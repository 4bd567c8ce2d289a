# The embedded demo (`make demo`): the full TF-CLIP method (CLIP-Memory
# built by the hook, SSP, TMD, every loss) with a small randomly initialised
# CLIP ViT, trained on the CPU on the synthetic MARS-layout dataset of
# tools/misc/make_synthetic_dataset.py. Frames are 64 x 32 (h x w) in clips
# of T = 4 so that training takes minutes on 2 cores.
_base_ = [
    './_base_/models/tfclip_vit-b16.py', './_base_/datasets/synthetic_mars.py',
    './_base_/schedules/tfclip_adam-5e-6_80e.py', './_base_/default_runtime.py'
]

clip_len = 4  # T
img_scale = (32, 64)  # (w, h)
width, proj_dims = 128, 64

model = dict(
    backbone=dict(
        # pretrained=None says explicitly: random weights, no CLIP file.
        arch=dict(
            _delete_=True,
            width=width,
            layers=2,
            heads=4,
            patch_size=8,
            output_dim=proj_dims),
        img_size=(64, 32),  # (h, w): 8 x 4 patches
        stride_size=8,
        num_cams=3,
        pretrained=None),
    neck=dict(embed_dims=width, num_heads=4, num_frames=clip_len),
    head=dict(
        num_classes=48,
        in_channels=width,
        proj_channels=proj_dims,
        ssp=dict(num_heads=4)))

train_pipeline = [
    dict(type='SampleTrackletFrames', clip_len=clip_len, mode='rrs'),
    dict(type='LoadTrackletFrames'),
    dict(type='TrackletResize', scale=img_scale),
    dict(type='TrackletFlip', prob=0.5),
    dict(
        type='TrackletRandomErasing',
        erase_prob=0.5,
        min_area_ratio=0.02,
        max_area_ratio=0.2,
        aspect_range=(0.3, 1 / 0.3)),
    dict(type='PackTrackletInputs'),
]
test_pipeline = [
    dict(
        type='SampleTrackletFrames',
        clip_len=clip_len,
        mode='dense',
        test_mode=True),
    dict(type='LoadTrackletFrames'),
    dict(type='TrackletResize', scale=img_scale),
    dict(type='PackTrackletInputs'),
]
# The demo validates with the reporting protocol (dense clips of its T);
# the dataset config's T = 8 `val_pipeline` must not reach a config based
# on this one (`{{_base_.val_pipeline}}`, as docs/custom_dataset.md writes).
val_pipeline = test_pipeline

train_dataloader = dict(num_workers=1, dataset=dict(pipeline=train_pipeline))
_test_datasets = [
    dict(
        type='MARS',
        data_root={{_base_.data_root}},
        split=split,
        pipeline=test_pipeline) for split in ('query', 'gallery')
]
# Dense clips, several tracklets per batch (see the dataset config).
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(datasets=_test_datasets))
test_dataloader = val_dataloader

custom_hooks = [
    dict(type='CLIPMemoryHook', pipeline=test_pipeline),
    # The untrained model's accuracy, for comparison.
    dict(type='EvaluateBeforeTrainHook'),
]

# A randomly initialised encoder learns with a larger rate than the 5e-6
# that fine-tunes CLIP; the shape of the schedule is the recipe's (a warm-up
# from 0.1x reaching the full rate at epoch 5: LinearLR's end is one past).
# The recipe's fp16 AmpOptimWrapper falls back to fp32 on the CPU.
optim_wrapper = dict(optimizer=dict(lr=3e-4))
max_epochs = 40
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        end_factor=1.0,
        by_epoch=True,
        begin=0,
        end=6),
    dict(
        type='MultiStepLR',
        milestones=[30],
        gamma=0.1,
        by_epoch=True,
        begin=0,
        end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)

default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
