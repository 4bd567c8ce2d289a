# Copyright (c) mmtfclip contributors. All rights reserved.
"""tools/demo/tracklet_search.py on a tiny model: a folder of 5 queries
against a flat gallery (exact and faiss, with the gallery index), and a
video query with a box track against a gallery of camera folders."""
import csv
import json
import os
import os.path as osp
import shutil
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmtfclip.apis import read_video_tracklet
from mmtfclip.registry import MODELS

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(ROOT, 'configs', 'tfclip_demo.py')
TOOL = osp.join(ROOT, 'tools', 'demo', 'tracklet_search.py')
# Default picture: strips of 4 frames of 128 x 64 (h x w), 3 px border;
# the query with a one-line header, a 10 px gap, then the top-3 in a row,
# 4 px apart, with one-line labels.
PICTURE_SHAPE = (18 + 134 + 10 + 18 + 134, 3 * 262 + 2 * 4, 3)


def search(ckpt, *args, ok=True):
    out = subprocess.run([
        sys.executable, TOOL, CONFIG, ckpt, '--topk', '3', '--batch-size', '2',
        '--cfg-options', 'model.head.num_classes=4',
        'model.backbone.num_cams=2', *args
    ],
                         capture_output=True,
                         text=True,
                         timeout=300,
                         cwd=ROOT)
    log = out.stdout + out.stderr
    assert (out.returncode == 0) == ok, log[-3000:]
    return log


def read_results(out_dir):
    """The CSV rows and the JSON of a run."""
    with open(osp.join(out_dir, 'ranking.csv'), newline='') as f:
        rows = list(csv.DictReader(f))
    with open(osp.join(out_dir, 'ranking.json')) as f:
        return rows, json.load(f)


def write_frames(folder, frames):
    os.makedirs(folder, exist_ok=True)
    for i, frame in enumerate(frames):
        cv2.imwrite(osp.join(folder, f'{i:04d}.png'), frame[..., ::-1])


def random_tracklet(seed, num_frames=5):
    rng = np.random.default_rng(seed)
    return [
        cv2.resize(rng.integers(0, 255, (4, 2, 3), dtype=np.uint8), (32, 64))
        for _ in range(num_frames)
    ]


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    cfg = Config.fromfile(CONFIG)
    cfg.model.head.num_classes = 4
    cfg.model.backbone.num_cams = 2
    torch.manual_seed(0)
    path = str(tmp_path_factory.mktemp('ckpt') / 'model.pth')
    torch.save({
        'state_dict': MODELS.build(cfg.model).state_dict(),
        'meta': {}
    }, path)
    return path


def test_five_queries_flat_gallery_index_and_faiss(checkpoint, tmp_path):
    gallery = tmp_path / 'gallery'
    for i in range(8):
        write_frames(str(gallery / f't{i}'), random_tracklet(i, 3 + i))
    queries = tmp_path / 'queries'
    sources = [1, 3, 4, 6, 7]
    for k, i in enumerate(sources):
        shutil.copytree(gallery / f't{i}', queries / f'person{k}')
    index = str(tmp_path / 'index')
    out = str(tmp_path / 'out')
    args = ('--query', str(queries), '--gallery', str(gallery), '--index',
            index, '--out-dir', out)

    log = search(checkpoint, *args)
    assert 'building it' in log
    rows, result = read_results(out)
    assert [r for r in rows[0]
            ] == ['query', 'rank', 'tracklet', 'camera', 'camid', 'distance']
    assert len(rows) == 5 * 3 and len(result['queries']) == 5
    for k, (query, i) in enumerate(zip(result['queries'], sources)):
        assert query['query'] == str(queries / f'person{k}')
        ranked = query['results']
        # Each query is a copy of a gallery tracklet: found first, at 0.
        assert ranked[0]['tracklet'] == str(gallery / f't{i}')
        assert ranked[0]['distance'] < 1e-4
        assert [r['rank'] for r in ranked] == [1, 2, 3]
        distances = [r['distance'] for r in ranked]
        assert distances == sorted(distances)
        assert [row['tracklet'] for row in rows[3 * k:3 * k + 3]
                ] == [r['tracklet'] for r in ranked]
        assert ranked[0]['camera'] is None and rows[3 * k]['camera'] == ''
    assert result['meta']['gallery_size'] == 8
    pictures = sorted(f for f in os.listdir(out) if f.endswith('.png'))
    assert pictures == [f'{k + 1:03d}_person{k}.png' for k in range(5)]
    assert cv2.imread(osp.join(out, pictures[0])).shape == PICTURE_SHAPE

    # Read back, nothing embedded again; faiss gives the same ranking.
    log = search(checkpoint, *args, '--engine', 'faiss', '--no-pictures')
    assert '8 tracklets read, 0 new to embed' in log
    faiss_rows, faiss_result = read_results(out)
    assert [r['tracklet'] for r in faiss_rows] == [r['tracklet'] for r in rows]
    assert faiss_result['meta']['engine'] == 'faiss'
    assert osp.isfile(osp.join(index, 'faiss.index'))


def test_video_query_camera_gallery(checkpoint, tmp_path):
    video = str(tmp_path / 'street.avi')
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*'MJPG'), 10,
                             (160, 120))
    rng = np.random.default_rng(0)
    for i in range(8):
        frame = np.full((120, 160, 3), 30 + 10 * i, np.uint8)
        frame[20:100, 40 + 5 * i:80 + 5 * i] = rng.integers(0, 255, 3)
        writer.write(frame)
    writer.release()
    boxes = str(tmp_path / 'track.csv')
    with open(boxes, 'w') as f:
        f.write('frame,x,y,w,h\n' + ''.join(f'{i},{40 + 5 * i},20,40,80\n'
                                            for i in range(1, 8, 2)))

    gallery = tmp_path / 'gallery'
    # The same person, cropped from the video, seen by camera cam2.
    write_frames(
        str(gallery / 'cam2' / 'person'), read_video_tracklet(video, boxes))
    for i in range(3):
        write_frames(
            str(gallery / f'cam{1 + i % 2}' / f'other{i}'),
            random_tracklet(10 + i))
    out = str(tmp_path / 'out')
    search(checkpoint, '--query', video, '--boxes', boxes, '--gallery',
           str(gallery), '--query-camid', '1', '--out-dir', out, '--topk', '4',
           '--layout', 'row')
    rows, result = read_results(out)
    assert [r['tracklet'] for r in rows][0] == str(gallery / 'cam2' / 'person')
    assert len(rows) == 4 and rows[0]['camera'] == 'cam2'
    assert rows[0]['camid'] == '1' and result['queries'][0]['query_camid'] == 1
    assert result['queries'][0]['query'] == video
    (picture, ) = [f for f in os.listdir(out) if f.endswith('.png')]
    # One row: the query and 4 results.
    assert cv2.imread(osp.join(out, picture)).shape[1] == 5 * 262 + 10 + 3 * 4

    with open(boxes, 'w') as f:
        f.write('frame,x,y,w,h\n1,45,20,40,80\n3,55,20,40,80\n'
                '5,65,20,400,80\n')
    log = search(
        checkpoint,
        '--query',
        video,
        '--boxes',
        boxes,
        '--gallery',
        str(gallery),
        ok=False)
    assert 'track.csv row 4: box x=65 y=20 w=400 h=80 lies outside' in log
