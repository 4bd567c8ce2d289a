# Copyright (c) mmtfclip contributors. All rights reserved.
import json
import os.path as osp

import cv2
import numpy as np
import pytest

from mmtfclip.registry import VISUALIZERS
from mmtfclip.visualization import ReIDRankingVisualizer
from mmtfclip.visualization.reid_ranking_visualizer import GREEN, GREY, RED

H, W = 32, 16  # shown frame size


def row_heights(num_lines=1):
    """Height of a labelled strip: text band + frame + 2 x 3 px border."""
    return 4 + 14 * num_lines + H + 6


def tracklet(value, num_frames=3):
    return np.full((num_frames, 20, 10, 3), value, np.uint8)


def test_draw_ranking_layout_and_colours(tmp_path):
    vis = VISUALIZERS.build(
        dict(
            type='ReIDRankingVisualizer',
            name='test_draw',
            num_frames=2,
            frame_size=(H, W)))
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
    assert picture.shape == (row_heights(2) + 10 + 3 * row_heights(),
                             2 * W + 6, 3)
    np.testing.assert_array_equal(vis.get_image(), picture)
    tops = row_heights(2) + 10 + np.arange(3) * row_heights() + 18
    for top, colour in zip(tops, (GREEN, RED, GREY)):
        assert tuple(picture[top, 0]) == colour
        assert tuple(picture[top + H + 5, 2 * W + 5]) == colour
    # The second gallery strip shows the array's frames.
    assert picture[tops[1] + 3 + H // 2, W].tolist() == [100] * 3
    with pytest.raises(ValueError, match='3 gallery tracklets but 2'):
        vis.draw_ranking(tracklet(0), [tracklet(0)] * 3, [0.1, 0.2])
    with pytest.raises(FileNotFoundError, match='missing.png'):
        vis.draw_ranking([str(tmp_path / 'missing.png')], [], [])


def test_visualize_ranking_to_file_and_backend(tmp_path):
    vis = ReIDRankingVisualizer(
        name='test_backend',
        num_frames=1,
        frame_size=(H, W),
        vis_backends=[dict(type='LocalVisBackend')],
        save_dir=str(tmp_path / 'vis'))
    out = str(tmp_path / 'sub' / 'ranking.png')
    vis.visualize_ranking(tracklet(10), [tracklet(20)], [0.5], out_file=out)
    assert cv2.imread(out).shape == (row_heights() + 10 + row_heights(), W + 6,
                                     3)
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
        name=f'test_dump_{query_in_gallery}', num_frames=1, frame_size=(H, W))
    picture = vis.visualize_dump(dump, 0, topk=5)
    # Query 0 (id 1, cam 0): itself (with the queries in the gallery) and
    # row 2 (id 1, cam 0) are discarded; rows 3 (id 1, cam 1, a true
    # match) and 4 remain, then query 1 (row 1) if it joined the gallery.
    shown = [3, 4, 1] if query_in_gallery else [3, 4]
    top = row_heights(3) + 10
    assert picture.shape[0] == top + len(shown) * row_heights()
    for k, row in enumerate(shown):
        strip = top + k * row_heights() + 18
        assert picture[strip + 3 + H // 2, W // 2].tolist() == [10 * row] * 3
        colour = GREEN if row == 3 else RED
        assert tuple(picture[strip, 0]) == colour

    files = vis.visualize_dump_rankings(
        dump, str(tmp_path / 'out'), topk=2, num=5)
    assert [osp.basename(f) for f in files
            ] == ['query00000_id1_cam1.png', 'query00001_id2_cam1.png']
    assert all(cv2.imread(f) is not None for f in files)
    with pytest.raises(IndexError, match=r'\[7\] out of range'):
        vis.visualize_dump_rankings(dump, str(tmp_path), queries=[1, 7])
    del dump['frame_paths']
    with pytest.raises(KeyError, match='no frame paths'):
        vis.visualize_dump(dump, 0)
