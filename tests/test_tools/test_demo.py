# Copyright (c) mmtfclip contributors. All rights reserved.
"""The demo end to end (data, memory, train, validate before and after,
ranking picture), shortened to two epochs."""
import os.path as osp
import subprocess
import sys

import cv2

from mmtfclip.datasets.synthetic import make_synthetic_mars

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def test_demo_runs_end_to_end(tmp_path):
    data_root = str(tmp_path / 'data')
    make_synthetic_mars(
        data_root,
        num_ids=12,
        num_test_ids=4,
        num_cams=2,
        tracklets_per_id=1,
        min_frames=4,
        max_frames=6,
        img_size=(64, 32))
    work_dir = str(tmp_path / 'work')
    out = subprocess.run(
        [
            sys.executable,
            osp.join(ROOT, 'tools', 'misc', 'demo.py'), '--data-root',
            data_root, '--work-dir', work_dir, '--num-queries', '2',
            '--cfg-options', 'model.head.num_classes=8',
            'model.backbone.num_cams=2', 'train_cfg.max_epochs=2',
            'train_cfg.val_interval=2'
        ],
        capture_output=True,
        text=True,
        timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert 'before training: mAP' in out.stdout
    assert 'after training:  mAP' in out.stdout
    picture = osp.join(work_dir, 'ranking.png')
    img = cv2.imread(picture)
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    assert osp.isfile(osp.join(work_dir, 'clip_memory.pth'))
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))
