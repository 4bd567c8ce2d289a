# Copyright (c) mmtfclip contributors. All rights reserved.
import json

import pytest
from mmengine.config import Config

from helpers.datasets import write_prid2011_layout
from mmtfclip.datasets import PRID2011
from mmtfclip.registry import DATASETS


def _items(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


def test_splits_from_file(tmp_path):
    root = tmp_path / 'prid'
    layout = write_prid2011_layout(str(root))
    split = layout['splits'][4]
    train = _items(PRID2011(data_root=str(root), split='train', split_id=4))
    query = _items(PRID2011(data_root=str(root), split='query', split_id=4))
    gallery = _items(
        PRID2011(data_root=str(root), split='gallery', split_id=4))
    test_pids = sorted(int(n[-4:]) for n in split['test'])
    assert [d['pid'] for d in query] == test_pids
    assert [d['pid'] for d in gallery] == test_pids
    assert {d['camid'] for d in query} == {0}
    assert {d['camid'] for d in gallery} == {1}
    assert [d['pid'] for d in train] == [0, 0, 1, 1, 2, 2]
    assert all('/cam_a/' in d['frame_paths'][0] for d in query)
    assert [p[-8:] for p in train[0]['frame_paths']
            ] == [f'{i:04d}.png' for i in range(1, 26)]


def test_generated_splits(tmp_path):
    root = tmp_path / 'prid'
    layout = write_prid2011_layout(
        str(root), num_shared=8, with_splits=False, short_persons=(2, ))
    train = _items(PRID2011(data_root=str(root), split='train', split_id=3))
    query = _items(PRID2011(data_root=str(root), split='query', split_id=3))
    again = _items(
        PRID2011(
            data_root=str(root), split='query', split_id=3, use_cache=False))
    other = _items(PRID2011(data_root=str(root), split='query', split_id=5))
    # Person 2 is too short in cam_a; persons 9 and 10 are in cam_b only.
    eligible = {int(n[-4:]) for n in layout['shared']} - {2}
    query_pids = {d['pid'] for d in query}
    assert len(train) == 2 * 3 and len(query) == 4
    assert query_pids <= eligible and 2 not in query_pids
    assert [d['pid'] for d in query] == [d['pid'] for d in again]
    assert [d['pid'] for d in query] != [d['pid'] for d in other]


def test_split_naming_a_missing_person(tmp_path):
    root = tmp_path / 'prid'
    layout = write_prid2011_layout(str(root))
    splits = layout['splits']
    splits[1]['test'][0] = 'person_0999'
    (root / 'splits_prid2011.json').write_text(json.dumps(splits))
    with pytest.raises(
            FileNotFoundError, match=r"split 1, \"test\" names 'person_0999'"):
        PRID2011(data_root=str(root), split='query', split_id=1)
    with pytest.raises(ValueError, match='split_id must be in 0..9'):
        PRID2011(data_root=str(root), split='query', split_id=12)


def test_builds_from_config(tmp_path):
    root = tmp_path / 'prid'
    write_prid2011_layout(str(root))
    cfg = Config.fromfile('configs/_base_/datasets/prid2011.py')
    cfg.train_dataloader.dataset.data_root = str(root)
    for dataset in cfg.test_dataloader.dataset.datasets:
        dataset.data_root = str(root)
    assert len(DATASETS.build(cfg.train_dataloader.dataset)) == 6
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(test_set) == 6
    # 25 frames in dense clips of 8: 4 clips.
    assert test_set[0]['inputs'].shape == (4, 8, 3, 256, 128)
    assert cfg.test_evaluator.query_in_gallery is False
