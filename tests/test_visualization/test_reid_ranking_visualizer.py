# Copyright (c) mmtfclip contributors. All rights reserved.
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from mmtfclip.registry import VISUALIZERS
from mmtfclip.visualization import ReIDRankingVisualizer
from mmtfclip.visualization.reid_ranking_visualizer import (
    BORDER, CELL_GAP, GAP, GREEN, GREY, LINE_HEIGHT, MARGIN, RED, fit_text,
    query_average_precisions, text_width)

H, W = 32, 40  # shown frame size


def band(num_lines):
    return 4 + LINE_HEIGHT * num_lines


def tracklet(value, num_frames=3):
    return np.full((num_frames, 20, 10, 3), value, np.uint8)


def strips_at_left_edge(picture):
    """``(top, colour)`` of each framed strip met going down column 0."""
    column = picture[:, 0]
    strips, y = [], 0
    while y < len(column):
        if column[y].tolist() != [255] * 3:
            strips.append((y, tuple(column[y])))
            y += H + 2 * BORDER
        else:
            y += 1
    return strips


def test_fit_text_wraps_and_shortens_in_the_middle():
    label = '#3  d=0.125  camera_entrance_north_door/track_0001'
    lines = fit_text(label, 120)
    assert all(text_width(line) <= 120 for line in lines)
    # Wrapped at a space and after the name's separators, nothing lost.
    assert ''.join(lines).replace(' ', '') == label.replace(' ', '')
    # A piece without separators is shortened in the middle, keeping its
    # start and its end (the track number).
    (short, ) = fit_text('camera0entrance0north0door0track0001', 120)
    assert '...' in short and short.endswith('0001')
    assert short.startswith('camera') and text_width(short) <= 120
    # At most 4 lines; the rest is shortened, the end still shown.
    lines = fit_text(' '.join(f'word{i}' for i in range(40)), 60)
    assert len(lines) == 4 and lines[-1].endswith('39')
    assert '...' in lines[-1]


def test_draw_grid_layout_and_colours(tmp_path):
    vis = VISUALIZERS.build(
        dict(
            type='ReIDRankingVisualizer',
            name='test_draw',
            num_frames=2,
            frame_size=(H, W),
            columns=2))
    assert isinstance(vis, ReIDRankingVisualizer)
    # Frame paths and arrays mix.
    path = str(tmp_path / 'f.png')
    cv2.imwrite(path, np.zeros((20, 10, 3), np.uint8))
    picture = vis.draw_ranking(
        tracklet(50),
        [[path, path], tracklet(100),
         tracklet(150)], [0.1, 0.2, 0.3],
        matches=[True, False, None],
        query_label='q\nsecond line')
    cell = 2 * W + 2 * BORDER
    strip = H + 2 * BORDER
    # The query, then rows of 2 and 1 gallery strips, one text line each.
    assert picture.shape == (band(2) + strip + GAP + 2 * (band(1) + strip) +
                             CELL_GAP, 2 * cell + CELL_GAP, 3)
    np.testing.assert_array_equal(vis.get_image(), picture)
    first = band(2) + strip + GAP + band(1)
    second = first + strip + CELL_GAP + band(1)
    corners = ((first, 0), (first, cell + CELL_GAP), (second, 0))
    for (top, left), colour in zip(corners, (GREEN, RED, GREY)):
        assert tuple(picture[top, left]) == colour
        assert tuple(picture[top + strip - 1, left + cell - 1]) == colour
    # The second gallery strip shows the array's frames.
    assert picture[first + 3 + H // 2,
                   cell + CELL_GAP + W].tolist() == [100] * 3
    with pytest.raises(ValueError, match='3 gallery tracklets but 2'):
        vis.draw_ranking(tracklet(0), [tracklet(0)] * 3, [0.1, 0.2])
    with pytest.raises(FileNotFoundError, match='missing.png'):
        vis.draw_ranking([str(tmp_path / 'missing.png')], [], [])
    with pytest.raises(ValueError, match='layout must be one of'):
        ReIDRankingVisualizer(name='bad', layout='column')


@pytest.mark.parametrize('layout', ['grid', 'row'])
def test_long_labels_are_never_cut(tmp_path, layout):
    """Read the written PNG back: every label's ink stays inside its cell,
    and the cells keep their width."""
    # --num-frames 2 in the grid: the header wraps over a narrow picture.
    num, num_frames = 4, 1 + (layout == 'grid')
    vis = ReIDRankingVisualizer(
        name=f'test_labels_{layout}',
        num_frames=num_frames,
        frame_size=(64, 32),
        layout=layout,
        columns=2)
    labels = [f'camera_entrance_north_door/track_{i:04d}' for i in range(num)]
    out = str(tmp_path / f'{layout}.png')
    vis.visualize_ranking(
        tracklet(60), [tracklet(90)] * num, [0.5] * num,
        query_label=('query id 5 cam 1  AP 0.423\nqueries join gallery; 3 '
                     'same-id same-cam entries discarded'),
        gallery_labels=labels,
        out_file=out)
    picture = cv2.imread(out)[..., ::-1]
    cell = vis.cell_width
    header = ('query id 5 cam 1  AP 0.423\nqueries join gallery; 3 same-id '
              'same-cam entries discarded')
    num_lines = max(
        len(fit_text(f'#1  d=0.500  {lab}', cell - 2 * MARGIN))
        for lab in labels)
    assert num_lines > 1  # the labels had to wrap
    if layout == 'row':
        lefts = [0] + [cell + GAP + k * (cell + CELL_GAP) for k in range(num)]
        assert picture.shape[1] == lefts[-1] + cell
        bands = [(0, band(4), left) for left in lefts]
    else:
        lefts = [0, cell + CELL_GAP]
        assert picture.shape[1] == 2 * cell + CELL_GAP
        query_lines = fit_text(header, picture.shape[1] - 2 * MARGIN, 8)
        # The header spans the picture, wrapped, nothing left out.
        assert len(query_lines) > 2
        assert ' '.join(query_lines).split() == header.split()
        top = band(len(query_lines)) + 64 + 2 * BORDER + GAP
        bands = [(top, top + band(num_lines), left) for left in lefts]
        query_ink = np.flatnonzero((picture[:band(len(query_lines))]
                                    < 128).all(axis=2).any(axis=0))
        assert 0 < query_ink.max() < picture.shape[1] - MARGIN + 1
    for top, bottom, left in bands:
        area = picture[top:bottom, left:left + cell]
        ink = np.flatnonzero((area < 128).all(axis=2).any(axis=0))
        assert ink.size and ink.max() < cell - MARGIN + 1


def test_visualize_ranking_to_file_and_backend(tmp_path):
    vis = ReIDRankingVisualizer(
        name='test_backend',
        num_frames=1,
        frame_size=(H, W),
        vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path / 'vis'))
    out = str(tmp_path / 'sub' / 'ranking.png')
    vis.visualize_ranking(tracklet(10), [tracklet(20)], [0.5], out_file=out)
    assert cv2.imread(out).shape[1] == W + 2 * BORDER
    vis.visualize_ranking(
        tracklet(10), [tracklet(20)], [0.5], name='rank', step=3)
    assert osp.isfile(
        str(tmp_path / 'vis' / 'vis_data' / 'vis_image' / 'rank_3.png'))


def make_dump(tmp_path, query_in_gallery):
    """Two queries and three gallery tracklets; each tracklet's one frame
    has grey level 10 * its row."""
    pids = np.array([1, 2, 1, 1, 3])
    camids = np.array([0, 0, 0, 1, 1])
    paths = []
    for i in range(5):
        paths.append(str(tmp_path / f'{i}.png'))
        cv2.imwrite(paths[-1], np.full((20, 10, 3), 10 * i, np.uint8))
    query_index = np.array([0, 1])
    gallery_index = np.arange(5) if query_in_gallery else np.arange(2, 5)
    features = np.array([[0.0], [5.0], [1.0], [2.0], [3.0]])
    distmat = np.abs(features[query_index] - features[gallery_index].T)
    return dict(
        pids=pids,
        camids=camids,
        query_index=query_index,
        gallery_index=gallery_index,
        distmat=distmat,
        frame_paths=np.array(paths),
        frame_path_offsets=np.arange(6),
        protocol=np.array(json.dumps(dict(query_in_gallery=query_in_gallery))))


@pytest.mark.parametrize('query_in_gallery', [True, False])
def test_visualize_dump_follows_the_protocol(tmp_path, query_in_gallery):
    dump = make_dump(tmp_path, query_in_gallery)
    vis = ReIDRankingVisualizer(
        name=f'test_dump_{query_in_gallery}',
        num_frames=1,
        frame_size=(H, W),
        columns=1)
    picture = vis.visualize_dump(dump, 0, topk=5)
    # Query 0 (id 1, cam 0): itself (with the queries in the gallery) and
    # row 2 (id 1, cam 0) are discarded; rows 3 (id 1, cam 1, a true
    # match) and 4 remain, then query 1 (row 1) if it joined the gallery.
    shown = [3, 4, 1] if query_in_gallery else [3, 4]
    strips = strips_at_left_edge(picture)
    assert [colour for _, colour in strips
            ] == [(0, 0, 0)] + [GREEN if row == 3 else RED for row in shown]
    for (top, _), row in zip(strips[1:], shown):
        assert picture[top + 3 + H // 2, W // 2].tolist() == [10 * row] * 3

    files = vis.visualize_dump_rankings(
        dump, str(tmp_path / 'out'), topk=2, num=5)
    assert [osp.basename(f) for f in files] == [
        '001_query00000_id1_cam1.png', '002_query00001_id2_cam1.png'
    ]
    assert all(cv2.imread(f) is not None for f in files)
    with pytest.raises(IndexError, match=r'\[7\] out of range'):
        vis.visualize_dump_rankings(dump, str(tmp_path), queries=[1, 7])
    del dump['frame_paths']
    with pytest.raises(KeyError, match='no frame paths'):
        vis.visualize_dump(dump, 0)


def ap_dump(tmp_path):
    """Four queries (rows 0-3, camera 0) and four gallery tracklets (rows
    4-7, camera 1). Queries 0, 1, 2 have one true match each, ranked 1st,
    3rd and 2nd: APs 1, 1/3 and 1/2; query 3's identity is not in the
    gallery (no AP)."""
    pids = np.array([10, 11, 12, 99, 10, 11, 12, 13])
    camids = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    distmat = np.array([
        [0.1, 0.5, 0.6, 0.7],
        [0.2, 0.4, 0.5, 0.1],
        [0.1, 0.5, 0.2, 0.3],
        [0.1, 0.2, 0.3, 0.4],
    ])
    paths = []
    for i in range(8):
        paths.append(str(tmp_path / f'{i}.png'))
        cv2.imwrite(paths[-1], np.full((20, 10, 3), 20 * i, np.uint8))
    return dict(
        pids=pids,
        camids=camids,
        query_index=np.arange(4),
        gallery_index=np.arange(4, 8),
        distmat=distmat,
        frame_paths=np.array(paths),
        frame_path_offsets=np.arange(9),
        protocol=np.array(json.dumps(dict(query_in_gallery=False))))


@pytest.mark.parametrize('order,expected', [('worst', [1, 2, 0, 3]),
                                            ('best', [0, 2, 1, 3]),
                                            ('even', [0, 1, 2, 3])])
def test_dump_rankings_in_ap_order(tmp_path, order, expected):
    dump = ap_dump(tmp_path)
    np.testing.assert_allclose(
        query_average_precisions(dump), [1, 1 / 3, 1 / 2, np.nan])
    vis = ReIDRankingVisualizer(
        name=f'test_order_{order}', num_frames=2, frame_size=(128, 64))
    files = vis.visualize_dump_rankings(
        dump, str(tmp_path / order), topk=4, num=4, order=order)
    assert [osp.basename(f) for f in files] == [
        f'{k:03d}_query{q:05d}_id{dump["pids"][q]}_cam1.png'
        for k, q in enumerate(expected, 1)
    ]
    # Read back: one grid of 4 results under the query, far shorter than
    # the 1,700-pixel strips of a one-column picture.
    for f in files:
        img = cv2.imread(f)
        assert img.shape[1] == 4 * (2 * 64 + 6) + 3 * CELL_GAP
        assert img.shape[0] < 500
    assert sorted(osp.basename(f)
                  for f in files) == [osp.basename(f) for f in files]
    with pytest.raises(ValueError, match='order must be one of'):
        vis.visualize_dump_rankings(dump, str(tmp_path), order='random')
