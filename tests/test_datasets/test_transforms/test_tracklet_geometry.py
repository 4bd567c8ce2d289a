# Copyright (c) mmtfclip contributors. All rights reserved.
"""Resize, flip and crop act on every frame of a tracklet alike."""
import numpy as np
import pytest

from mmtfclip.datasets.transforms import (TrackletFlip, TrackletRandomCrop,
                                          TrackletResize)


def _frames(n=6, h=20, w=10):
    rng = np.random.RandomState(0)
    return rng.randint(0, 256, size=(n, h, w, 3), dtype=np.uint8)


def test_resize_array_list_and_noop():
    imgs = _frames()
    out = TrackletResize(scale=(5, 8))(dict(imgs=imgs.copy()))
    assert out['imgs'].shape == (6, 8, 5, 3) and out['img_shape'] == (8, 5)
    same = TrackletResize(scale=(10, 20))(dict(imgs=imgs))
    assert same['imgs'] is imgs
    mixed = [imgs[0], np.zeros((40, 16, 3), np.uint8)]
    out = TrackletResize(scale=(10, 20))(dict(imgs=mixed))
    assert out['imgs'].shape == (2, 20, 10, 3)
    assert (out['imgs'][0] == imgs[0]).all() and not out['imgs'][1].any()
    with pytest.raises(ValueError, match='scale'):
        TrackletResize(scale=(0, 5))
    assert '(5, 8)' in repr(TrackletResize(scale=(5, 8)))


def test_flip_is_the_same_for_all_frames():
    imgs = _frames()
    out = TrackletFlip(prob=1.0)(dict(imgs=imgs.copy()))
    assert out['flip'] and out['flip_direction'] == 'horizontal'
    assert (out['imgs'] == imgs[:, :, ::-1]).all()
    out = TrackletFlip(prob=0.0)(dict(imgs=imgs.copy()))
    assert not out['flip'] and (out['imgs'] == imgs).all()
    np.random.seed(0)
    flips = []
    for _ in range(100):
        out = TrackletFlip(prob=0.5)(dict(imgs=imgs.copy()))
        flipped = [(f == g[:, ::-1]).all() for f, g in zip(out['imgs'], imgs)]
        kept = [(f == g).all() for f, g in zip(out['imgs'], imgs)]
        # All frames flipped or none.
        assert all(flipped) or all(kept)
        assert all(flipped) == out['flip']
        flips.append(out['flip'])
    assert 25 < sum(flips) < 75


def test_frames_of_different_sizes_need_a_resize():
    with pytest.raises(ValueError, match='put TrackletResize first'):
        TrackletFlip(prob=1.0)(
            dict(
                imgs=[
                    np.zeros((4, 2, 3), np.uint8),
                    np.zeros((6, 2, 3), np.uint8)
                ],
                tracklet_id=3))


def test_crop_with_padding_shares_the_window():
    imgs = _frames(n=4, h=20, w=10)
    crop = TrackletRandomCrop(crop_size=(20, 10), padding=3, pad_val=7)
    np.random.seed(0)
    offsets = set()
    for _ in range(60):
        out = crop(dict(imgs=imgs.copy()))
        x1, y1, x2, y2 = out['crop_bbox']
        assert (x2 - x1, y2 - y1) == (10, 20)
        offsets.add((x1, y1))
        padded = np.full((4, 26, 16, 3), 7, np.uint8)
        padded[:, 3:23, 3:13] = imgs
        assert (out['imgs'] == padded[:, y1:y2, x1:x2]).all()
        assert out['img_shape'] == (20, 10)
    assert len(offsets) > 20
    assert max(x for x, _ in offsets) <= 6 and max(y for _, y in offsets) <= 6


def test_crop_without_padding_and_errors():
    imgs = _frames(n=2, h=20, w=10)
    out = TrackletRandomCrop(crop_size=(16, 8))(dict(imgs=imgs))
    x1, y1, x2, y2 = out['crop_bbox']
    assert (out['imgs'] == imgs[:, y1:y2, x1:x2]).all()
    with pytest.raises(ValueError, match='larger than the padded frame'):
        TrackletRandomCrop(crop_size=(30, 10))(dict(imgs=imgs))
    with pytest.raises(ValueError, match='padding'):
        TrackletRandomCrop(crop_size=8, padding=-1)
    assert 'padding=(10, 10)' in repr(
        TrackletRandomCrop(crop_size=(256, 128), padding=10))
