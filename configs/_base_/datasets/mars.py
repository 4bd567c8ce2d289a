# MARS (Zheng et al., ECCV 2016), the published release under data_root.
# Pipeline values follow the TF-CLIP authors' code and config
# (configs/vit_clipreid.yml, datasets/make_dataloader_clipreid.py): T=8
# frames of 256x128 (h x w), flip 0.5, per-frame random erasing 0.5, P x K =
# 4 x 4 training batches, dense clips of 8 for the reported test numbers,
# one frame per chunk ("rrs") for validation during training. Their config
# sets PADDING: 10, but their sequence pipeline never pads or crops, so
# neither does this one; `TrackletRandomCrop(padding=10)` is available for
# that ablation. Normalisation (ImageNet mean/std, as their loader does)
# belongs to the model's data preprocessor.
dataset_type = 'MARS'
data_root = 'data/mars'
clip_len = 8  # T, frames per clip

train_pipeline = [
    dict(type='SampleTrackletFrames', clip_len=clip_len, mode='rrs'),
    dict(type='LoadTrackletFrames'),
    dict(type='TrackletResize', scale=(128, 256)),  # (w, h)
    dict(type='TrackletFlip', prob=0.5),
    dict(
        type='TrackletRandomErasing',
        erase_prob=0.5,
        min_area_ratio=0.02,
        max_area_ratio=0.2,
        aspect_range=(0.3, 1 / 0.3)),
    dict(type='PackTrackletInputs'),
]
# The reporting protocol: every frame, in consecutive clips of T.
test_pipeline = [
    dict(
        type='SampleTrackletFrames',
        clip_len=clip_len,
        mode='dense',
        test_mode=True),
    dict(type='LoadTrackletFrames'),
    dict(type='TrackletResize', scale=(128, 256)),  # (w, h)
    dict(type='PackTrackletInputs'),
]
# Validation during training: the first frame of each of T chunks.
val_pipeline = [
    dict(
        type='SampleTrackletFrames',
        clip_len=clip_len,
        mode='rrs',
        test_mode=True),
    dict(type='LoadTrackletFrames'),
    dict(type='TrackletResize', scale=(128, 256)),  # (w, h)
    dict(type='PackTrackletInputs'),
]

train_batch_size = 16  # P x K = 4 identities x 4 tracklets
train_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=8,
    # Workers seeded from the epoch's seed and the rank (resumable; see
    # mmtfclip.utils.launch.epoch_worker_init_fn); clips of one shape.
    worker_init_fn=dict(type='epoch_worker_init_fn'),
    collate_fn=dict(type='default_collate'),
    persistent_workers=False,
    sampler=dict(
        type='IdentityBalancedSampler',
        batch_size=train_batch_size,
        num_instances=4,
        # The authors' epoch: P identities drawn among those with groups
        # left until fewer than P remain.
        mode='greedy'),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))

# Query first, then gallery: the metric tells them apart by `split`.
# `split` and `num_pids` differ between the two and are not compared.
val_dataloader = dict(
    batch_size=32,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ConcatDataset',
        ignore_keys=['split', 'num_pids'],
        datasets=[
            dict(
                type=dataset_type,
                data_root=data_root,
                split='query',
                pipeline=val_pipeline),
            dict(
                type=dataset_type,
                data_root=data_root,
                split='gallery',
                pipeline=val_pipeline),
        ]))
# Dense clips of 8 tracklets per batch: the data preprocessor concatenates
# their clips (the number differs per tracklet), the model encodes at most
# model.max_test_clips of them at once and averages each tracklet's own.
test_dataloader = dict(
    batch_size=8,
    num_workers=8,
    # A list per batch: tracklets of different clip counts do not stack.
    collate_fn=dict(type='pseudo_collate'),
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ConcatDataset',
        ignore_keys=['split', 'num_pids'],
        datasets=[
            dict(
                type=dataset_type,
                data_root=data_root,
                split='query',
                pipeline=test_pipeline),
            dict(
                type=dataset_type,
                data_root=data_root,
                split='gallery',
                pipeline=test_pipeline),
        ]))

# The MARS evaluation code's protocol (and the authors'): the query
# tracklets join the gallery; same-id same-camera matches are discarded.
val_evaluator = dict(type='ReIDMetric', query_in_gallery=True)
test_evaluator = val_evaluator
