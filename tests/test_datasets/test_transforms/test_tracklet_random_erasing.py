# Copyright (c) mmtfclip contributors. All rights reserved.
import numpy as np
import pytest

from mmtfclip.datasets.transforms import TrackletRandomErasing


def test_boxes_are_placed_where_drawn():
    np.random.seed(0)
    erase = TrackletRandomErasing(erase_prob=1.0, fill_color=(255, 0, 255))
    h, w = 64, 32
    ratios, aspects, corners = [], [], []
    for _ in range(30):
        imgs = np.zeros((8, h, w, 3), np.uint8)
        out = erase(dict(imgs=imgs))
        boxes = out['erased_boxes']
        assert [b[0] for b in boxes] == list(range(8))
        for k, x1, y1, x2, y2 in boxes:
            expected = np.zeros((h, w), bool)
            expected[y1:y2, x1:x2] = True
            painted = (out['imgs'][k] == (255, 0, 255)).all(-1)
            # Exactly the drawn box, nothing else.
            assert (painted == expected).all()
            ratios.append((x2 - x1) * (y2 - y1) / (h * w))
            aspects.append((y2 - y1) / (x2 - x1))
            corners.append((x1, y1, x2 - x1, y2 - y1))
    assert 0.015 < min(ratios) and max(ratios) < 0.23
    assert 0.25 < min(aspects) and max(aspects) < 3.8
    # The corner is drawn over the whole frame, independent of the box size
    # (the authors' code pastes at (box width, box height)).
    xs = np.array([c[0] for c in corners])
    ys = np.array([c[1] for c in corners])
    assert xs.min() == 0 or ys.min() == 0
    assert ys.max() > h / 2
    assert np.mean([c[:2] == c[2:] for c in corners]) < 0.05


def test_frames_are_erased_independently_with_random_colours():
    np.random.seed(1)
    erase = TrackletRandomErasing(erase_prob=0.5)
    counts = []
    for _ in range(40):
        imgs = np.zeros((8, 64, 32, 3), np.uint8)
        out = erase(dict(imgs=imgs))
        counts.append(len(out['erased_boxes']))
        for k, x1, y1, x2, y2 in out['erased_boxes']:
            region = out['imgs'][k, y1:y2, x1:x2].reshape(-1, 3)
            # One solid colour per box.
            assert (region == region[0]).all()
        untouched = set(range(8)) - {b[0] for b in out['erased_boxes']}
        assert all(not out['imgs'][k].any() for k in untouched)
    assert 2.5 < np.mean(counts) < 5.5


def test_arguments():
    with pytest.raises(ValueError, match='erase_prob'):
        TrackletRandomErasing(erase_prob=2)
    with pytest.raises(ValueError, match='min_area_ratio'):
        TrackletRandomErasing(min_area_ratio=0.3, max_area_ratio=0.2)
    out = TrackletRandomErasing(erase_prob=0.0)(
        dict(imgs=np.zeros((3, 8, 4, 3), np.uint8)))
    assert out['erased_boxes'] == []
    assert 'erase_prob=0.5' in repr(TrackletRandomErasing())
