# Copyright (c) mmtfclip contributors. All rights reserved.
import numpy as np
import pytest
from mmengine.config import Config
from scipy.io import savemat

from helpers.datasets import write_ilidsvid_layout
from mmtfclip.datasets import iLIDSVID
from mmtfclip.datasets.utils import sliding_windows
from mmtfclip.registry import DATASETS


def _items(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


@pytest.mark.parametrize('split_id', [0, 7])
def test_protocol_split(tmp_path, split_id):
    root = tmp_path / 'ilids'
    layout = write_ilidsvid_layout(str(root))
    numbers, row = layout['numbers'], layout['ls_set'][split_id]
    # The first half of a row is the test set (Wang et al., torchreid).
    test_numbers = sorted(numbers[int(i) - 1] for i in row[:3])
    train_numbers = sorted(numbers[int(i) - 1] for i in row[3:])

    train = _items(
        iLIDSVID(data_root=str(root), split='train', split_id=split_id))
    query = _items(
        iLIDSVID(data_root=str(root), split='query', split_id=split_id))
    gallery = _items(
        iLIDSVID(data_root=str(root), split='gallery', split_id=split_id))
    assert [d['pid'] for d in query] == test_numbers
    assert [d['pid'] for d in gallery] == test_numbers
    assert {d['camid'] for d in query} == {0}
    assert {d['camid'] for d in gallery} == {1}
    assert [d['pid'] for d in train] == [0, 0, 1, 1, 2, 2]
    assert [d['camid'] for d in train] == [0, 1] * 3
    # Person with folder number n has 3 + index frames in cam1.
    index = list(numbers)
    first = train[0]['frame_paths']
    assert len(first) == 3 + index.index(train_numbers[0])
    assert f'person{train_numbers[0]:03d}' in first[0]
    assert [p[-9:] for p in first] == sorted(p[-9:] for p in first)


def test_split_naming_a_missing_person(tmp_path):
    root = tmp_path / 'ilids'
    layout = write_ilidsvid_layout(str(root))
    ls_set = layout['ls_set'].copy()
    ls_set[2, 4] = 40
    savemat(
        str(root / 'train-test people splits' /
            'train_test_splits_ilidsvid.mat'), dict(ls_set=ls_set))
    with pytest.raises(
            ValueError, match=r'ls_set row 3, column 5 names person 40'):
        iLIDSVID(data_root=str(root), split='train', split_id=2)
    # Other splits are fine.
    iLIDSVID(data_root=str(root), split='train', split_id=1)
    with pytest.raises(ValueError, match='split_id must be in 0..9'):
        iLIDSVID(data_root=str(root), split='train', split_id=10)


def test_person_missing_from_camera_2(tmp_path):
    root = tmp_path / 'ilids'
    layout = write_ilidsvid_layout(str(root))
    folder = root / 'i-LIDS-VID' / 'sequences' / 'cam2' / \
        f'person{layout["numbers"][0]:03d}'
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    splits = [s for s in range(10) if 1 in layout['ls_set'][s][:3].astype(int)]
    with pytest.raises(FileNotFoundError, match='missing from'):
        iLIDSVID(data_root=str(root), split='query', split_id=splits[0])


def test_sliding_windows_rule():
    # The authors' rule: starts 0, 4, 8, ... below n - T, one window of all
    # frames when n <= T (T = 8, stride 4).
    assert sliding_windows(3, 8, 4) == [(0, 3)]
    assert sliding_windows(8, 8, 4) == [(0, 8)]
    assert sliding_windows(9, 8, 4) == [(0, 8)]
    assert sliding_windows(12, 8, 4) == [(0, 8)]
    assert sliding_windows(13, 8, 4) == [(0, 8), (4, 12)]
    assert sliding_windows(23, 8, 4) == [(0, 8), (4, 12), (8, 16), (12, 20)]
    counts = [len(sliding_windows(n, 8, 4)) for n in range(1, 41)]
    assert counts == [1] * 12 + [2] * 4 + [3] * 4 + [4] * 4 + [5] * 4 + \
        [6] * 4 + [7] * 4 + [8] * 4


def test_window_counts_on_a_layout(tmp_path):
    root = tmp_path / 'ilids'
    layout = write_ilidsvid_layout(str(root))
    # A split whose test persons include the longest sequences (index 5).
    split_id = next(r for r in range(10) if 6 in layout['ls_set'][r][:3])
    numbers, row = list(layout['numbers']), layout['ls_set'][split_id]
    # Person at sorted index i: 3 + i frames in cam1, 4 + i in cam2.
    test_index = sorted(int(i) - 1 for i in row[:3])
    train_index = sorted(int(i) - 1 for i in row[3:])
    # Windows of T = 4, stride 2, for 3..9 frames.
    per_length = {3: 1, 4: 1, 5: 1, 6: 1, 7: 2, 8: 2, 9: 3}

    def build(split):
        return _items(
            iLIDSVID(
                data_root=str(root),
                split=split,
                split_id=split_id,
                window_len=4,
                window_stride=2))

    train, query, gallery = build('train'), build('query'), build('gallery')
    assert len(train) == sum(per_length[3 + i] + per_length[4 + i]
                             for i in train_index)
    assert len(query) == sum(per_length[3 + i] for i in test_index)
    assert len(gallery) == sum(per_length[4 + i] for i in test_index)
    # Each window is one item of T frames with its tracklet's identity.
    assert {len(d['frame_paths']) for d in train + query + gallery} == {4}
    assert [d['tracklet_id'] for d in query] == list(range(len(query)))
    assert {d['pid'] for d in query} == {numbers[i] for i in test_index}
    assert {d['camid'] for d in query} == {0}
    assert {d['camid'] for d in gallery} == {1}
    assert sorted({d['pid'] for d in train}) == [0, 1, 2]
    # The longest gallery sequence (9 frames) gives windows at 0, 2, 4.
    longest = [d for d in gallery if d['pid'] == numbers[5]]
    assert [d['first_frame'] for d in longest] == [0, 2, 4]
    frames = [int(p[-9:-4]) for p in longest[2]['frame_paths']]
    assert frames == [5, 6, 7, 8]
    assert len({d['source_tracklet'] for d in longest}) == 1
    # A sequence shorter than T is one window padded with its last frame.
    short = [d for d in train + query if len(set(d['frame_paths'])) == 3]
    assert len(short) == 1
    for d in short:
        assert d['frame_paths'][3] == d['frame_paths'][2]
        assert d['first_frame'] == 0


def test_windows_change_the_items_not_the_cache(tmp_path, dataset_cache):
    root = tmp_path / 'ilids'
    write_ilidsvid_layout(str(root), min_frames=12)
    whole = iLIDSVID(data_root=str(root), split='query')
    windows = iLIDSVID(data_root=str(root), split='query', window_len=8)
    assert len(list(dataset_cache.iterdir())) == 1
    assert len(whole) == 3
    # 12..17 frames in cam1: 1, 1, 1 or 2 windows of 8, stride 4.
    lengths = [len(whole.get_data_info(i)['frame_paths']) for i in range(3)]
    assert len(windows) == sum(len(sliding_windows(n, 8, 4)) for n in lengths)
    assert len(windows) > 3
    with pytest.raises(ValueError, match='window_stride must be a positive'):
        iLIDSVID(data_root=str(root), window_len=8, window_stride=0)


def test_builds_from_config(tmp_path):
    root = tmp_path / 'ilids'
    write_ilidsvid_layout(str(root), min_frames=10)
    cfg = Config.fromfile('configs/_base_/datasets/ilidsvid.py')
    cfg.train_dataloader.dataset.data_root = str(root)
    for dataset in cfg.test_dataloader.dataset.datasets:
        dataset.data_root = str(root)
    # The authors' windows: T = 8, stride 4 on sequences of 10..16 frames
    # (one window each below 13 frames, two from 13).
    assert cfg.train_dataloader.dataset.window_len == 8
    assert cfg.train_dataloader.dataset.window_stride == 4
    layout_lengths = [10 + i for i in range(6)] + [11 + i for i in range(6)]
    train = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(train) > 6
    assert {
        len(train.get_data_info(i)['frame_paths'])
        for i in range(len(train))
    } == {8}
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(test_set) + len(train) == sum(
        len(sliding_windows(n, 8, 4)) for n in layout_lengths)
    # A window is one clip of T frames: one embedding per window.
    assert test_set[0]['inputs'].shape == (1, 8, 3, 256, 128)
    assert cfg.test_evaluator.query_in_gallery is True
    assert np.all(
        [d['split_id'] == 0 for d in cfg.test_dataloader.dataset.datasets])


def test_builds_whole_tracklets_from_config(tmp_path):
    root = tmp_path / 'ilids'
    write_ilidsvid_layout(str(root), min_frames=10)
    cfg = Config.fromfile('configs/_base_/datasets/ilidsvid_tracklets.py')
    cfg.train_dataloader.dataset.data_root = str(root)
    for loader in (cfg.val_dataloader, cfg.test_dataloader):
        for dataset in loader.dataset.datasets:
            dataset.data_root = str(root)
    assert len(DATASETS.build(cfg.train_dataloader.dataset)) == 6
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(test_set) == 6
    assert len(DATASETS.build(cfg.val_dataloader.dataset)) == 6
    # Dense clips of 8 of a whole tracklet of 10..16 frames.
    assert test_set[0]['inputs'].shape[1:] == (8, 3, 256, 128)
    assert cfg.test_evaluator.query_in_gallery is False
