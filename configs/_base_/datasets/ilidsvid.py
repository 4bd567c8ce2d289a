# iLIDS-VID (Wang et al., ECCV 2014), the published release under
# data_root; split_id picks one of the 10 splits (tools/train_splits.py runs
# them all).
# As the TF-CLIP authors' iLIDS-VID path does (datasets/set/datasequence.py
# and ilidsvidsequence.py, SEQ_SRD = 4): every split is cut into windows of
# T consecutive frames starting every 4 frames, and each window is trained
# on, ranked and evaluated as one tracklet; their evaluator puts the query
# windows into the gallery too. ilidsvid_tracklets.py is the other option:
# whole tracklets, torchreid's protocol.
# Pipeline values as in mars.py (the TF-CLIP authors' values): T=8 frames
# of 256x128 (h x w), flip, per-frame random erasing, P x K = 4 x 4, dense
# clips for testing, rrs for validation (on a window of T frames both take
# its T frames, as the authors' loaders do).
dataset_type = 'iLIDSVID'
data_root = 'data/ilidsvid'
clip_len = 8  # T, frames per clip
window_len = clip_len  # frames per window (their SEQ_LEN); None: whole
window_stride = 4  # their SEQ_SRD

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
        split_id=0,
        window_len=window_len,
        window_stride=window_stride,
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
                split_id=0,
                window_len=window_len,
                window_stride=window_stride,
                pipeline=val_pipeline),
            dict(
                type=dataset_type,
                data_root=data_root,
                split='gallery',
                split_id=0,
                window_len=window_len,
                window_stride=window_stride,
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
                split_id=0,
                window_len=window_len,
                window_stride=window_stride,
                pipeline=test_pipeline),
            dict(
                type=dataset_type,
                data_root=data_root,
                split='gallery',
                split_id=0,
                window_len=window_len,
                window_stride=window_stride,
                pipeline=test_pipeline),
        ]))

# The authors' evaluator (utils/metrics.py, R1_mAP_eval: the gallery is
# every query and gallery window; same-id same-camera entries are
# discarded), so camera-1 windows of other persons are gallery distractors.
val_evaluator = dict(type='ReIDMetric', query_in_gallery=True)
test_evaluator = val_evaluator
