# Copyright (c) mmtfclip contributors. All rights reserved.
"""tools/demo/tracklet_search.py on a tiny model: a folder query against a
flat gallery (with the embedding cache), and a video query with a box
track against a gallery of camera folders."""
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
# Default picture: 4 frames of 128 x 64 (h x w) per strip, 3 px border,
# an 18 px text band; the query row, a 10 px gap, then top-3.
PICTURE_SHAPE = (4 * (18 + 134) + 10, 4 * 64 + 6, 3)


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


def ranked_paths(log):
    """The tracklet column of the printed ranking, best first."""
    lines = log[log.index('rank   distance'):].splitlines()[1:]
    return [line.split()[-1] for line in lines if line.split()[0].isdigit()]


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


def test_folder_query_flat_gallery_and_cache(checkpoint, tmp_path):
    gallery = tmp_path / 'gallery'
    for i in range(5):
        write_frames(str(gallery / f't{i}'), random_tracklet(i, 3 + i))
    shutil.copytree(gallery / 't3', tmp_path / 'query')
    cache, out = str(tmp_path / 'cache.npz'), str(tmp_path / 'rank.png')
    args = ('--query', str(tmp_path / 'query'), '--gallery', str(gallery),
            '--cache', cache, '--out', out)

    log = search(checkpoint, *args)
    ranked = ranked_paths(log)
    assert len(ranked) == 5 and ranked[0] == str(gallery / 't3')
    assert 'Gallery embeddings cached' in log
    assert cv2.imread(out).shape == PICTURE_SHAPE
    mtime = os.stat(cache).st_mtime_ns

    log = search(checkpoint, *args)
    assert 'read from the cache' in log and ranked_paths(log) == ranked
    assert os.stat(cache).st_mtime_ns == mtime

    # A retrained (rewritten) checkpoint makes the cache stale.
    ckpt = torch.load(checkpoint, weights_only=True)
    new_ckpt = str(tmp_path / 'retrained.pth')
    torch.save(ckpt, new_ckpt)
    log = search(new_ckpt, *args)
    assert 'is stale: it was computed with the checkpoint' in log
    assert ranked_paths(log) == ranked


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
    out = str(tmp_path / 'video_rank.png')
    log = search(checkpoint, '--query', video, '--boxes', boxes, '--gallery',
                 str(gallery), '--query-camid', '1', '--out', out)
    ranked = ranked_paths(log)
    assert ranked[0] == str(gallery / 'cam2' / 'person') and len(ranked) == 4
    assert ' cam2 ' in log and cv2.imread(out).shape == PICTURE_SHAPE

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
