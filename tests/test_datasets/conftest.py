# Copyright (c) mmtfclip contributors. All rights reserved.
"""Fixtures of the dataset tests: generated layouts and an isolated cache."""
import shutil

import pytest

from mmtfclip.utils.synthetic import make_synthetic_mars

# Small enough to write in well under a second: 4 train and 4 test persons,
# 2 cameras, 2 tracklets per person and camera, 3-6 frames of 32x16.
TINY_MARS = dict(
    num_ids=8,
    num_cams=2,
    tracklets_per_id=2,
    min_frames=3,
    max_frames=6,
    seed=3,
    num_distractors=2,
    num_junk=2,
    img_size=(32, 16))


@pytest.fixture(scope='session')
def tiny_mars_kwargs():
    """The arguments of ``make_synthetic_mars`` behind ``tiny_mars``."""
    return dict(TINY_MARS)


@pytest.fixture(autouse=True)
def dataset_cache(tmp_path, monkeypatch):
    """Each test gets its own parsed-index cache folder."""
    cache = tmp_path / 'dataset_cache'
    monkeypatch.setenv('MMTFCLIP_CACHE_DIR', str(cache))
    return cache


@pytest.fixture(scope='session')
def tiny_mars_session(tmp_path_factory):
    """A tiny synthetic MARS release and its counts (do not modify it)."""
    root = tmp_path_factory.mktemp('tiny_mars') / 'mars'
    counts = make_synthetic_mars(str(root), **TINY_MARS)
    return root, counts


@pytest.fixture
def tiny_mars(tiny_mars_session, tmp_path):
    """A private copy of the tiny MARS release that a test may edit."""
    root, counts = tiny_mars_session
    copy = tmp_path / 'mars'
    shutil.copytree(root, copy)
    return copy, counts
