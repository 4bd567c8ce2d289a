# Copyright (c) mmtfclip contributors. All rights reserved.
"""The CLIP-ReID demo end to end (stage 1, stage 2, evaluation before and
after, ranking picture), shortened to a few epochs of each stage."""
import glob
import os.path as osp
import re

from helpers.tiny_demo import run_python, write_tiny_synthetic_mars

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def test_clipreid_demo_runs_both_stages(tmp_path):
    data_root = str(tmp_path / 'data')
    write_tiny_synthetic_mars(data_root, tracklets_per_id=2)
    work_dir = str(tmp_path / 'work')
    out = run_python([
        osp.join(ROOT, 'tools', 'misc', 'demo.py'), '--config',
        osp.join(ROOT, 'configs', 'clipreid_demo.py'), '--data-root',
        data_root, '--work-dir', work_dir, '--num-queries', '2',
        '--cfg-options', 'model.head.num_classes=8',
        'model.backbone.num_cams=2', 'custom_hooks.0.max_epochs=6',
        'custom_hooks.0.save_interval=3', 'custom_hooks.0.log_interval=1',
        'train_cfg.max_epochs=2', 'train_cfg.val_interval=2'
    ],
                     cwd=ROOT,
                     timeout=600)
    assert 'mmtfclip demo: CLIP-ReID' in out
    # The console shows the summary; the stages' lines are in the run's log.
    logs = glob.glob(osp.join(work_dir, '*', '*.log'))
    assert len(logs) == 1, logs
    with open(logs[0]) as f:
        log = f.read()
    losses = [
        float(v)
        for v in re.findall(r'Stage 1 epoch \[\d/6\] lr: \S+ loss: (\S+)', log)
    ]
    assert len(losses) == 6 and losses[-1] < losses[0]
    assert 'text features of 8 identities fixed' in log
    assert 'before training: mAP' in out and 'after training:  mAP' in out
    assert osp.isfile(osp.join(work_dir, 'prompt_learning.pth'))
    assert osp.isfile(osp.join(work_dir, 'epoch_2.pth'))
    assert osp.isfile(osp.join(work_dir, 'ranking.png'))
