# Copyright (c) mmtfclip contributors. All rights reserved.
"""The config is the whole run: tools/train.py, the runner built from the
config in Python, mmengine's own ``Runner.from_cfg`` and the config that
tools/train.py dumps into its work dir train the demo identically."""
import glob
import json
import os.path as osp

import torch
from mmengine.config import Config
from mmengine.runner import Runner

from helpers.tiny_demo import run_python, write_tiny_synthetic_mars
from mmtfclip.registry import RUNNERS
from mmtfclip.utils import set_data_root

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DEMO = osp.join(ROOT, 'configs', 'tfclip_demo.py')
# The tiny data of write_tiny_synthetic_mars, 2 epochs of 8 iterations.
OPTIONS = {
    'model.head.num_classes': 8,
    'model.backbone.num_cams': 2,
    'train_dataloader.batch_size': 4,
    'train_dataloader.sampler.batch_size': 4,
    'train_dataloader.sampler.num_instances': 2,
    'train_cfg.max_epochs': 2,
    'train_cfg.val_interval': 2,
    'default_hooks.logger.interval': 1,
    'log_processor.window_size': 1,
}
CLI_OPTIONS = [f'{key}={value}' for key, value in OPTIONS.items()]


def _logged(work_dir):
    """``({step: loss}, final mAP)`` of the one run logged in work_dir."""
    (path, ) = glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json'))
    with open(path) as f:
        records = [json.loads(line) for line in f]
    losses = {r['step']: r['loss'] for r in records if 'loss' in r}
    return losses, [r['reid/mAP'] for r in records if 'reid/mAP' in r][-1]


def _python_cfg(data_root, work_dir):
    cfg = Config.fromfile(DEMO)
    set_data_root(cfg, data_root)
    cfg.merge_from_dict(OPTIONS)
    cfg.work_dir = work_dir
    return cfg


def test_every_way_to_start_a_run_trains_the_same(tmp_path, monkeypatch):
    # One intra-op thread everywhere: sums over another number of threads
    # round differently (conftest gives this process two).
    monkeypatch.setenv('OMP_NUM_THREADS', '1')
    threads = torch.get_num_threads()
    data_root = write_tiny_synthetic_mars(
        str(tmp_path / 'data'), tracklets_per_id=2)

    tool_dir = str(tmp_path / 'tool')
    run_python([
        'tools/train.py', DEMO, '--data-root', data_root, '--work-dir',
        tool_dir, '--cfg-options', *CLI_OPTIONS
    ],
               cwd=ROOT)
    expected_losses, expected_map = _logged(tool_dir)
    assert sorted(expected_losses) == list(range(1, 17))

    built_dir = str(tmp_path / 'built')
    plain_dir = str(tmp_path / 'plain')
    torch.set_num_threads(1)
    try:
        RUNNERS.build(_python_cfg(data_root, built_dir)).train()
        # mmengine's own Runner: the hooks and the worker seeding come from
        # the config, so a single-process run is the same.
        Runner.from_cfg(_python_cfg(data_root, plain_dir)).train()
    finally:
        torch.set_num_threads(threads)

    dumped_dir = str(tmp_path / 'dumped')
    run_python([
        'tools/train.py',
        osp.join(tool_dir, 'tfclip_demo.py'), '--work-dir', dumped_dir
    ],
               cwd=ROOT)

    for work_dir in (built_dir, plain_dir, dumped_dir):
        losses, mAP = _logged(work_dir)
        assert losses == expected_losses, work_dir
        assert mAP == expected_map, work_dir
