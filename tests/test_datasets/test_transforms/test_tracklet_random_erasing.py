# Copyright (c) mmtfclip contributors. All rights reserved.
import numpy as np
import pytest

from mmtfclip.datasets.transforms import TrackletRandomErasing


def test_default_pastes_at_an_offset_equal_to_the_box_size():
    """The authors' frame.paste(fill, box.size): the fill's top-left
    corner is (box width, box height), clipped by the frame."""
    np.random.seed(0)
    erase = TrackletRandomErasing(erase_prob=1.0, fill_color=(255, 0, 255))
    h, w = 64, 32
    clipped = 0
    for _ in range(30):
        out = erase(dict(imgs=np.zeros((8, h, w, 3), np.uint8)))
        boxes = out['erased_boxes']
        assert len(boxes) == 8
        for k, x1, y1, x2, y2 in boxes:
            # The offset is the box size; the far edge is clipped.
            assert (x2, y2) == (min(2 * x1, w), min(2 * y1, h))
            expected = np.zeros((h, w), bool)
            expected[y1:2 * y1, x1:2 * x1] = True
            painted = (out['imgs'][k] == (255, 0, 255)).all(-1)
            assert (painted == expected).all()
            # The unclipped box: floor of a size of 2 % to 20 % of the frame.
            assert 0.015 < x1 * y1 / (h * w) <= 0.2
            clipped += (x2 - x1, y2 - y1) != (x1, y1)
    assert clipped > 0
    # A box larger than half the frame lies partly outside it: a drawn
    # 39.97 x 19.98 (h x w) box is 39 x 19 pixels, pasted at (19, 39) in a
    # 64 x 32 frame: only 25 x 13 pixels are filled.
    np.random.seed(3)
    sizes = TrackletRandomErasing(
        erase_prob=1.0,
        min_area_ratio=0.39,
        max_area_ratio=0.39,
        aspect_range=(2.0, 2.0))(
            dict(imgs=np.zeros((1, h, w, 3), np.uint8)))['erased_boxes']
    assert sizes == [(0, 19, 39, 32, 64)]


def test_sampled_placement_puts_boxes_where_drawn():
    np.random.seed(0)
    erase = TrackletRandomErasing(
        erase_prob=1.0, fill_color=(255, 0, 255), placement='sampled')
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
    erase = TrackletRandomErasing(erase_prob=0.5, placement='sampled')
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
    with pytest.raises(ValueError, match='placement'):
        TrackletRandomErasing(placement='corner')
    with pytest.raises(ValueError, match='min_area_ratio'):
        TrackletRandomErasing(min_area_ratio=0.3, max_area_ratio=0.2)
    out = TrackletRandomErasing(erase_prob=0.0)(
        dict(imgs=np.zeros((3, 8, 4, 3), np.uint8)))
    assert out['erased_boxes'] == []
    assert 'erase_prob=0.5' in repr(TrackletRandomErasing())
