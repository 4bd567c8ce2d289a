# Copyright (c) mmtfclip contributors. All rights reserved.
"""The demo end to end (data, memory, train, validate before and after,
ranking picture), shortened to two epochs."""
import os.path as osp

import cv2

from helpers.tiny_demo import (TINY_DEMO_OPTIONS, run_python,
                               write_tiny_synthetic_mars)

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def test_demo_runs_end_to_end(tmp_path):
    data_root = str(tmp_path / 'data')
    write_tiny_synthetic_mars(data_root)
    work_dir = str(tmp_path / 'work')
    out = run_python([
        osp.join(ROOT, 'tools', 'misc',
                 'demo.py'), '--data-root', data_root, '--work-dir', work_dir,
        '--num-queries', '2', '--cfg-options', *TINY_DEMO_OPTIONS,
        'train_cfg.max_epochs=2', 'train_cfg.val_interval=2'
    ],
                     cwd=ROOT,
                     timeout=600)
    assert 'before training: mAP' in out
    assert 'after training:  mAP' in out
    picture = osp.join(work_dir, 'ranking.png')
    img = cv2.imread(picture)
    assert img is not None and img.shape[0] > 100 and img.shape[1] > 100
    assert osp.isfile(osp.join(work_dir, 'clip_memory.pth'))
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))
