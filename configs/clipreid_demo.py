# The CLIP-ReID demo: both stages of CLIP-ReID (prompt learning with the
# frozen encoders, then fine-tuning the image encoder against the learned
# text features) with a small, randomly initialised CLIP, on the CPU, on the
# synthetic MARS-layout dataset of tools/misc/make_synthetic_dataset.py.
# Video clips of T = 4 frames of 64 x 32 (h x w) go through the image model,
# their frame features averaged. Run it with
#   python tools/misc/demo.py --config configs/clipreid_demo.py \
#       --work-dir work_dirs/clipreid_demo
_base_ = [
    './_base_/models/clipreid_vit-b16.py',
    './_base_/datasets/synthetic_mars.py',
    './_base_/schedules/clipreid_adam-5e-6_60e.py',
    './_base_/default_runtime.py'
]

clip_len = 4  # T
img_scale = (32, 64)  # (w, h)
width, text_width, proj_dims = 128, 64, 64

model = dict(
    # The synthetic set's frames, normalised as the TF-CLIP demo does.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    backbone=dict(
        # pretrained=None: random weights, no CLIP file.
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
        sie_coef=1.0,
        pretrained=None),
    text_encoder=dict(
        # CLIP's tokenizer needs its 49408-token vocabulary.
        arch=dict(
            _delete_=True,
            width=text_width,
            layers=1,
            heads=2,
            context_length=77,
            vocab_size=49408,
            output_dim=proj_dims),
        pretrained=None),
    head=dict(num_classes=48, in_channels=width, proj_channels=proj_dims))

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

train_dataloader = dict(num_workers=1, dataset=dict(pipeline=train_pipeline))
_test_datasets = [
    dict(
        type='MARS',
        data_root={{_base_.data_root}},
        split=split,
        pipeline=test_pipeline) for split in ('query', 'gallery')
]
val_dataloader = dict(
    batch_size=8,
    num_workers=1,
    collate_fn=dict(type='pseudo_collate'),
    dataset=dict(datasets=_test_datasets))
test_dataloader = val_dataloader

# Stage 1 on the dense clips of every training tracklet (their mean), then
# the untrained image model's accuracy for comparison.
custom_hooks = [
    dict(
        type='PromptLearningHook',
        pipeline=test_pipeline,
        max_epochs=30,
        batch_size=64,
        optimizer=dict(type='Adam', lr=3.5e-3, weight_decay=1e-4),
        lr_min=1e-5,
        warmup_lr_init=1e-4,
        warmup_epochs=3,
        samples_per_load=8,
        num_workers=1,
        save_interval=10,
        log_interval=10),
    dict(type='EvaluateBeforeTrainHook'),
]

# A random encoder learns with a larger rate than the 5e-6 that fine-tunes
# CLIP; the shape of the schedule is the recipe's.
optim_wrapper = dict(optimizer=dict(lr=3e-4))
max_epochs = 40
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        end_factor=1.0,
        by_epoch=True,
        begin=0,
        end=5),
    dict(
        type='MultiStepLR',
        milestones=[30],
        gamma=0.1,
        by_epoch=True,
        begin=0,
        end=max_epochs),
]
train_cfg = dict(max_epochs=max_epochs, val_interval=max_epochs)
# The synthetic set is a video set: the MARS protocol of the TF-CLIP demo.
default_hooks = dict(
    logger=dict(interval=10),
    checkpoint=dict(interval=max_epochs, max_keep_ckpts=1))
randomness = dict(seed=0)
