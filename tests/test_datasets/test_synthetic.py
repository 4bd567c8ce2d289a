# Copyright (c) mmtfclip contributors. All rights reserved.
import hashlib
import importlib.util
import os
import sys

import numpy as np
import pytest
from scipy.io import loadmat

from mmtfclip.datasets import MARS
from mmtfclip.utils import make_synthetic_mars


def _digest(root):
    digest = hashlib.sha256()
    for d, dirs, files in sorted(os.walk(root)):
        dirs.sort()
        for name in sorted(files):
            path = os.path.join(d, name)
            digest.update(os.path.relpath(path, root).encode())
            with open(path, 'rb') as f:
                digest.update(f.read())
    return digest.hexdigest()


def test_deterministic_for_a_seed(tiny_mars_session, tiny_mars_kwargs,
                                  tmp_path):
    root, counts = tiny_mars_session
    again = tmp_path / 'again'
    assert make_synthetic_mars(str(again), **tiny_mars_kwargs) == counts
    assert _digest(again) == _digest(root)
    other = tmp_path / 'other'
    make_synthetic_mars(str(other), **dict(tiny_mars_kwargs, seed=4))
    assert _digest(other) != _digest(root)


def test_mars_layout(tiny_mars_session):
    root, counts = tiny_mars_session
    info = root / 'info'
    train = loadmat(str(info / 'tracks_train_info.mat'))['track_train_info']
    test = loadmat(str(info / 'tracks_test_info.mat'))['track_test_info']
    query = loadmat(str(info / 'query_IDX.mat'))['query_IDX']
    # Doubles, as MARS publishes them; query_IDX is a row vector.
    assert train.dtype == test.dtype == query.dtype == np.float64
    assert query.shape == (1, counts['num_query'])
    assert train.shape == (counts['num_train_tracklets'], 4)
    names = (info / 'test_name.txt').read_text().split()
    assert names == sorted(names)
    assert int(test[-1, 1]) == len(names)
    # Consecutive, gap-free ranges.
    assert (test[1:, 0] == test[:-1, 1] + 1).all()
    assert set(test[:, 2].astype(int)) >= {-1, 0}
    assert (test[query.ravel().astype(int) - 1, 2] > 0).all()
    assert {'0000', '00-1'} <= set(os.listdir(root / 'bbox_test'))
    for name in names[:5]:
        assert (root / 'bbox_test' / name[:4] / name).is_file()


def test_parsed_by_mars_with_expected_counts(tiny_mars_session,
                                             tiny_mars_kwargs):
    root, counts = tiny_mars_session
    train = MARS(data_root=str(root), split='train')
    lengths = [
        len(train.get_data_info(i)['frame_paths']) for i in range(len(train))
    ]
    assert min(lengths) >= tiny_mars_kwargs['min_frames']
    assert max(lengths) <= tiny_mars_kwargs['max_frames']
    assert train.metainfo['num_pids'] == counts['num_train_ids']
    assert train.metainfo['num_cams'] == tiny_mars_kwargs['num_cams']


@pytest.mark.parametrize('kwargs, match', [
    (dict(num_ids=1), 'num_ids'),
    (dict(num_cams=10), 'num_cams'),
    (dict(tracklets_per_id=0), 'tracklets_per_id'),
    (dict(min_frames=5, max_frames=4), 'min_frames'),
])
def test_bad_arguments(tmp_path, kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_synthetic_mars(str(tmp_path), **kwargs)


def test_command_line(tmp_path, monkeypatch):
    tool = os.path.join(
        os.path.dirname(__file__), '..', '..', 'tools', 'misc',
        'make_synthetic_dataset.py')
    spec = importlib.util.spec_from_file_location('make_synthetic_dataset',
                                                  tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / 'cli'
    monkeypatch.setattr(sys, 'argv', [
        tool,
        str(out), '--num-ids', '4', '--num-cams', '2', '--tracklets-per-id',
        '1', '--min-frames', '2', '--max-frames', '3', '--seed', '1'
    ])
    module.main()
    train = MARS(data_root=str(out), split='train')
    assert len(train) == 2 * 2  # 2 persons x 2 cameras x 1 tracklet
    assert (out / 'info' / 'query_IDX.mat').is_file()
