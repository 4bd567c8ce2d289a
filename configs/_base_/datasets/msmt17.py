# MSMT17 (Wei et al., CVPR 2018), V1 or V2, extracted under data_root (the
# image folders and list_*.txt); training = list_train.txt + list_val.txt.
# Each image is a tracklet of one frame. Pipeline values follow the
# CLIP-ReID authors' loader (datasets/make_dataloader_clipreid.py,
# configs/person/vit_clipreid.yml): 256 x 128 (h x w), bicubic resize,
# flip 0.5, pad 10 + random crop, random erasing 0.5 (area 0.02-1/3, timm's
# defaults; their timm eraser fills each pixel with noise, ours one random
# colour per box); test images resized bilinearly. Normalisation (mean / std
# 0.5) belongs to the model's data preprocessor.
dataset_type = 'MSMT17'
data_root = 'data/msmt17'

train_pipeline = [
    dict(type='SampleTrackletFrames', clip_len=1, mode='rrs'),
    dict(type='LoadTrackletFrames'),
    dict(
        type='TrackletResize',
        scale=(128, 256),  # (w, h)
        interpolation='bicubic'),
    dict(type='TrackletFlip', prob=0.5),
    dict(
        type='TrackletRandomCrop',
        crop_size=(256, 128),  # (h, w)
        padding=10),
    dict(
        type='TrackletRandomErasing',
        erase_prob=0.5,
        min_area_ratio=0.02,
        max_area_ratio=1 / 3,
        aspect_range=(0.3, 1 / 0.3)),
    dict(type='PackTrackletInputs'),
]
test_pipeline = [
    dict(type='SampleTrackletFrames', clip_len=1, mode='rrs', test_mode=True),
    dict(type='LoadTrackletFrames'),
    dict(type='TrackletResize', scale=(128, 256)),  # (w, h)
    dict(type='PackTrackletInputs'),
]

# 64 images: 16 identities x 4 (their IMS_PER_BATCH, NUM_INSTANCE).
train_batch_size = 64
train_dataloader = dict(
    batch_size=train_batch_size,
    num_workers=8,
    sampler=dict(
        type='IdentityBalancedSampler',
        batch_size=train_batch_size,
        num_instances=4),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        split='train',
        pipeline=train_pipeline))

# Query first, then gallery: the metric tells them apart by `split`.
val_dataloader = dict(
    batch_size=64,
    num_workers=8,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type='ConcatDataset',
        ignore_keys=['split', 'num_pids'],
        datasets=[
            dict(
                type=dataset_type,
                data_root=data_root,
                split=split,
                pipeline=test_pipeline) for split in ('query', 'gallery')
        ]))
test_dataloader = val_dataloader

# The image-ReID protocol: the query is not in the gallery; same-id
# same-camera gallery entries are discarded.
val_evaluator = dict(type='ReIDMetric', query_in_gallery=False)
test_evaluator = val_evaluator
