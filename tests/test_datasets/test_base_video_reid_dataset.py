# Copyright (c) mmtfclip contributors. All rights reserved.
import logging
import os
import shutil
import stat
import time

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger

from helpers.datasets import write_ilidsvid_layout
from mmtfclip.datasets import (MARS, BaseVideoReIDDataset,
                               CustomVideoReIDDataset, default_cache_dir,
                               iLIDSVID)


def _snapshot(root):
    return sorted(
        os.path.join(d, f) for d, _, files in os.walk(root) for f in files)


def _record_log(monkeypatch):
    logger = MMLogger.get_current_instance()
    logged = []
    original = logger.log

    def log(level, msg, *args, **kwargs):
        logged.append((level, str(msg)))
        original(level, msg, *args, **kwargs)

    monkeypatch.setattr(logger, 'log', log)
    return logged


def _forbid_parsing(monkeypatch):

    def fail(self):
        raise AssertionError('the index should come from the cache')

    monkeypatch.setattr(MARS, 'parse_tracklets', fail)


def test_default_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv('MMTFCLIP_CACHE_DIR', str(tmp_path / 'c'))
    assert default_cache_dir() == str(tmp_path / 'c')
    monkeypatch.delenv('MMTFCLIP_CACHE_DIR')
    monkeypatch.setenv('XDG_CACHE_HOME', str(tmp_path / 'x'))
    assert default_cache_dir() == str(tmp_path / 'x' / 'mmtfclip' / 'datasets')


def test_cache_reused_and_relative(tiny_mars, tmp_path, dataset_cache,
                                   monkeypatch):
    root, _ = tiny_mars
    first = MARS(data_root=str(root), split='train')
    files = list(dataset_cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith('MARS-train-')
    # Paths are stored relative to the data root.
    assert str(root) not in files[0].read_text()

    _forbid_parsing(monkeypatch)
    again = MARS(data_root=str(root), split='train')
    assert again.get_data_info(3) == first.get_data_info(3)

    # A moved dataset reuses the cache and points at its new place.
    moved = tmp_path / 'moved'
    shutil.move(str(root), str(moved))
    relocated = MARS(data_root=str(moved), split='train')
    paths = relocated.get_data_info(0)['frame_paths']
    assert all(p.startswith(str(moved)) for p in paths)
    assert all(os.path.isfile(p) for p in paths)
    assert len(list(dataset_cache.iterdir())) == 1


def test_cache_invalidated_by_changed_annotation(tiny_mars, dataset_cache):
    root, _ = tiny_mars
    MARS(data_root=str(root), split='train')
    names = root / 'info' / 'train_name.txt'
    lines = names.read_text().splitlines()
    # Swap two frames of the first tracklet: same size, new content.
    lines[0], lines[1] = lines[1], lines[0]
    names.write_text('\n'.join(lines) + '\n')
    dataset = MARS(data_root=str(root), split='train')
    assert dataset.get_data_info(0)['frame_paths'][0].endswith(lines[0])
    assert len(list(dataset_cache.iterdir())) == 2
    # Each split has its own entry.
    MARS(data_root=str(root), split='query')
    assert len(list(dataset_cache.iterdir())) == 3


def test_corrupt_cache_is_parsed_again(tiny_mars, dataset_cache):
    root, _ = tiny_mars
    MARS(data_root=str(root), split='gallery')
    (cache_file, ) = dataset_cache.iterdir()
    cache_file.write_text('{not json')
    dataset = MARS(data_root=str(root), split='gallery')
    assert len(dataset) > 0


def test_read_only_root_and_unwritable_cache(tiny_mars, tmp_path, monkeypatch):
    root, counts = tiny_mars
    before = _snapshot(root)
    for d, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(d, name)
            os.chmod(
                path,
                os.stat(path).st_mode
                & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))
    os.chmod(root, 0o555)
    try:
        # The cache cannot be created under a regular file either: the
        # dataset still builds, with a warning.
        blocker = tmp_path / 'blocker'
        blocker.write_text('')
        monkeypatch.setenv('MMTFCLIP_CACHE_DIR', str(blocker / 'cache'))
        logged = _record_log(monkeypatch)
        dataset = MARS(data_root=str(root), split='train')
        assert len(dataset) == counts['num_train_tracklets']
        assert _snapshot(root) == before
        assert any(level == logging.WARNING and 'dataset cache' in msg
                   for level, msg in logged)
    finally:
        for d, dirs, _ in os.walk(root):
            for name in dirs:
                os.chmod(os.path.join(d, name), 0o755)
        os.chmod(root, 0o755)


def test_without_cache(tiny_mars, dataset_cache):
    root, counts = tiny_mars
    dataset = MARS(data_root=str(root), split='query', use_cache=False)
    assert len(dataset) == counts['num_query']
    assert not dataset_cache.exists()


def test_base_class_requires_a_parser(tmp_path):
    with pytest.raises(NotImplementedError):
        BaseVideoReIDDataset(data_root=str(tmp_path))


def test_cache_notices_frames_added_to_a_folder(tmp_path, dataset_cache):
    root = tmp_path / 'ilids'
    write_ilidsvid_layout(str(root))
    first = iLIDSVID(data_root=str(root), split='query')
    lengths = [len(first.get_data_info(i)['frame_paths']) for i in range(3)]
    folder = os.path.dirname(first.get_data_info(0)['frame_paths'][0])
    # Frame folders are listed: a new frame must reach the index. (The
    # wait makes sure the folder's modification time moves.)
    time.sleep(0.02)
    shutil.copy(
        first.get_data_info(0)['frame_paths'][-1],
        os.path.join(folder, 'cam1_zz_99999.png'))
    again = iLIDSVID(data_root=str(root), split='query')
    assert len(again.get_data_info(0)['frame_paths']) == lengths[0] + 1
    assert again.get_data_info(0)['frame_paths'][-1].endswith('99999.png')
    assert [len(again.get_data_info(i)['frame_paths'])
            for i in (1, 2)] == lengths[1:]
    # An unchanged folder tree is read from the cache.
    cached = iLIDSVID(data_root=str(root), split='query')
    assert cached.get_data_info(0) == again.get_data_info(0)
    assert len(list(dataset_cache.iterdir())) == 1


def test_cache_notices_a_new_frame_of_a_custom_folder(tmp_path, monkeypatch):
    root = tmp_path / 'data'
    (root / 'seq').mkdir(parents=True)
    for i in range(3):
        cv2.imwrite(
            str(root / 'seq' / f'{i}.jpg'), np.zeros((8, 4, 3), np.uint8))
    (root / 'train.txt').write_text('seq 4 0\n')
    assert len(
        CustomVideoReIDDataset(data_root=str(root),
                               ann_file='train.txt')[0]['frame_paths']) == 3
    time.sleep(0.02)
    cv2.imwrite(str(root / 'seq' / '3.jpg'), np.zeros((8, 4, 3), np.uint8))
    logged = _record_log(monkeypatch)
    dataset = CustomVideoReIDDataset(data_root=str(root), ann_file='train.txt')
    assert len(dataset.get_data_info(0)['frame_paths']) == 4
    assert any('changed since the index' in msg for _, msg in logged)
