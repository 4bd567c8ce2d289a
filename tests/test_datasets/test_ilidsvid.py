# Copyright (c) mmtfclip contributors. All rights reserved.
import numpy as np
import pytest
from mmengine.config import Config
from scipy.io import savemat

from mmtfclip.datasets import iLIDSVID
from mmtfclip.registry import DATASETS
from mmtfclip.testing.datasets import write_ilidsvid_layout


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


def test_builds_from_config(tmp_path):
    root = tmp_path / 'ilids'
    write_ilidsvid_layout(str(root))
    cfg = Config.fromfile('configs/_base_/datasets/ilidsvid.py')
    cfg.train_dataloader.dataset.data_root = str(root)
    for dataset in cfg.test_dataloader.dataset.datasets:
        dataset.data_root = str(root)
    assert len(DATASETS.build(cfg.train_dataloader.dataset)) == 6
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(test_set) == 6
    assert test_set[0]['inputs'].shape[1:] == (8, 3, 256, 128)
    assert cfg.test_evaluator.query_in_gallery is False
    assert np.all(
        [d['split_id'] == 0 for d in cfg.test_dataloader.dataset.datasets])
