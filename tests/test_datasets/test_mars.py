# Copyright (c) mmtfclip contributors. All rights reserved.
import re

import numpy as np
import pytest
from mmengine.config import Config
from mmengine.runner import Runner
from scipy.io import loadmat, savemat

from mmtfclip.datasets import MARS
from mmtfclip.registry import DATASETS

NAME = re.compile(r'(\d{4}|00-1)C(\d)T(\d{4})F(\d{3})\.jpg$')


def _parse(path):
    pid, cam, track, frame = NAME.search(path).groups()
    return int(pid.replace('00-1', '-1')), int(cam), int(track), int(frame)


def test_counts_pids_cameras_and_order(tiny_mars_session):
    root, counts = tiny_mars_session
    train = MARS(data_root=str(root), split='train')
    query = MARS(data_root=str(root), split='query')
    gallery = MARS(data_root=str(root), split='gallery')
    assert len(train) == counts['num_train_tracklets']
    assert len(query) == counts['num_query']
    assert len(gallery) == counts['num_gallery']

    # Training ids are relabelled 0..N-1 (the files hold odd ids).
    train_items = [train.get_data_info(i) for i in range(len(train))]
    labels = sorted({d['pid'] for d in train_items})
    assert labels == list(range(counts['num_train_ids']))
    assert train.metainfo['num_pids'] == counts['num_train_ids']
    assert train.metainfo['num_cams'] == 2
    assert train.metainfo['dataset_name'] == 'MARS'
    original = {
        d['pid']: {_parse(p)[0]
                   for p in d['frame_paths']}
        for d in train_items
    }
    # Relabelling keeps the order of the original ids.
    assert [original[k].pop() for k in labels] == [1, 3, 5, 7]

    for dataset in (train, query, gallery):
        for i in range(len(dataset)):
            item = dataset.get_data_info(i)
            parsed = [_parse(p) for p in item['frame_paths']]
            # One person, one camera, frames 1..n in order.
            assert len({p[:3] for p in parsed}) == 1
            assert [p[3] for p in parsed] == list(range(1, len(parsed) + 1))
            assert item['camid'] == parsed[0][1] - 1
            assert item['tracklet_id'] == i
            assert item['split'] == dataset.split
            if dataset is not train:
                assert item['pid'] == parsed[0][0]
            assert all(p.startswith(str(root)) for p in item['frame_paths'])

    query_pids = {query.get_data_info(i)['pid'] for i in range(len(query))}
    gallery_pids = [
        gallery.get_data_info(i)['pid'] for i in range(len(gallery))
    ]
    assert query_pids == {2, 4, 6, 8}
    # Distractors stay in the gallery, junk is gone.
    assert 0 in gallery_pids and -1 not in gallery_pids
    assert gallery_pids.count(0) == 2


def test_query_follows_query_idx_order(tiny_mars):
    root, _ = tiny_mars
    mat = root / 'info' / 'query_IDX.mat'
    rows = loadmat(str(mat))['query_IDX'].ravel()
    savemat(str(mat), dict(query_IDX=rows[::-1][None]))
    info = loadmat(str(root / 'info' / 'tracks_test_info.mat'))
    table = info['track_test_info']
    query = MARS(data_root=str(root), split='query')
    expected = [int(table[int(r) - 1, 2]) for r in rows[::-1]]
    assert [query.get_data_info(i)['pid']
            for i in range(len(query))] == expected


def test_tracklet_spanning_two_persons(tiny_mars):
    root, _ = tiny_mars
    path = root / 'info' / 'tracks_train_info.mat'
    table = loadmat(str(path))['track_train_info']
    # Row 4 is the last tracklet of person 1; stretch it into person 3.
    assert table[3, 2] == 1 and table[4, 2] == 3
    table[3, 1] = table[4, 0]
    savemat(str(path), dict(track_train_info=table))
    with pytest.raises(
            ValueError,
            match=r'tracks_train_info\.mat, row 4: the '
            r'tracklet spans several persons'):
        MARS(data_root=str(root), split='train')


def test_tracklet_spanning_two_cameras(tiny_mars):
    root, _ = tiny_mars
    path = root / 'info' / 'tracks_train_info.mat'
    table = loadmat(str(path))['track_train_info']
    # Rows 2 and 3 of person 1: camera 1 then camera 2.
    assert table[1, 3] == 1 and table[2, 3] == 2
    table[1, 1] = table[2, 0]
    savemat(str(path), dict(track_train_info=table))
    with pytest.raises(ValueError, match=r'row 2: .*several cameras'):
        MARS(data_root=str(root), split='train')


def test_query_index_out_of_range(tiny_mars):
    root, _ = tiny_mars
    path = root / 'info' / 'query_IDX.mat'
    rows = loadmat(str(path))['query_IDX'].ravel()
    rows[2] = 10_000
    savemat(str(path), dict(query_IDX=rows[None]))
    for split in ('query', 'gallery'):
        with pytest.raises(
                ValueError,
                match=r'query_IDX\.mat: query_IDX\[2\] = 10000 '
                r'is out of range'):
            MARS(data_root=str(root), split=split)


def test_range_outside_name_list(tiny_mars):
    root, _ = tiny_mars
    path = root / 'info' / 'tracks_test_info.mat'
    table = loadmat(str(path))['track_test_info']
    table[-1, 1] = table[-1, 1] + 5
    savemat(str(path), dict(track_test_info=table))
    with pytest.raises(ValueError, match=rf'row {len(table)}: frames'):
        MARS(data_root=str(root), split='gallery')


def test_missing_annotation_and_root(tiny_mars, tmp_path):
    root, _ = tiny_mars
    with pytest.raises(FileNotFoundError, match='not a folder'):
        MARS(data_root=str(tmp_path / 'nowhere'))
    (root / 'info' / 'query_IDX.mat').unlink()
    with pytest.raises(FileNotFoundError, match='query_IDX.mat'):
        MARS(data_root=str(root), split='query')
    with pytest.raises(ValueError, match='data_root'):
        MARS(data_root='')
    with pytest.raises(ValueError, match='split'):
        MARS(data_root=str(root), split='test')


def test_builds_from_config(tiny_mars_session):
    root, counts = tiny_mars_session
    cfg = Config.fromfile('configs/_base_/datasets/mars.py')
    for loader in (cfg.train_dataloader, cfg.val_dataloader,
                   cfg.test_dataloader):
        datasets = loader.dataset.get('datasets', [loader.dataset])
        for dataset in datasets:
            dataset.data_root = str(root)
        loader.num_workers = 0
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(test_set) == counts['num_query'] + counts['num_gallery']
    first = test_set[0]
    assert first['data_samples'].split == 'query'
    assert test_set[len(test_set) - 1]['data_samples'].split == 'gallery'
    # Dense clips of 8 at 256x128 (h x w).
    assert first['inputs'].shape[1:] == (8, 3, 256, 128)
    val_item = DATASETS.build(cfg.val_dataloader.dataset)[0]
    assert val_item['inputs'].shape == (8, 3, 256, 128)

    # The training loader: one P x K batch of 4 persons x 4 tracklets.
    loader = Runner.build_dataloader(cfg.train_dataloader, seed=0)
    batch = next(iter(loader))
    assert len(batch['inputs']) == 16
    assert batch['inputs'][0].shape == (8, 3, 256, 128)
    labels = np.array([s.gt_label.item() for s in batch['data_samples']])
    assert sorted(np.unique(labels, return_counts=True)[1]) == [4] * 4
