# iLIDS-VID as whole tracklets (one item per person and camera) instead of
# the authors' windows of ilidsvid.py, evaluated with torchreid's protocol,
# the usual one for the two-camera datasets: the gallery is camera 2 only
# (the query is camera 1), one embedding per tracklet (dense clips
# averaged).
_base_ = ['./ilidsvid.py']

train_dataloader = dict(dataset=dict(window_len=None))

# Query first, then gallery: the metric tells them apart by `split`.
val_dataloader = dict(
    dataset=dict(datasets=[
        dict(
            type={{_base_.dataset_type}},
            data_root={{_base_.data_root}},
            split='query',
            split_id=0,
            window_len=None,
            pipeline={{_base_.val_pipeline}}),
        dict(
            type={{_base_.dataset_type}},
            data_root={{_base_.data_root}},
            split='gallery',
            split_id=0,
            window_len=None,
            pipeline={{_base_.val_pipeline}}),
    ]))
test_dataloader = dict(
    dataset=dict(datasets=[
        dict(
            type={{_base_.dataset_type}},
            data_root={{_base_.data_root}},
            split='query',
            split_id=0,
            window_len=None,
            pipeline={{_base_.test_pipeline}}),
        dict(
            type={{_base_.dataset_type}},
            data_root={{_base_.data_root}},
            split='gallery',
            split_id=0,
            window_len=None,
            pipeline={{_base_.test_pipeline}}),
    ]))

val_evaluator = dict(type='ReIDMetric', query_in_gallery=False)
test_evaluator = val_evaluator
