# Copyright (c) mmtfclip contributors. All rights reserved.
"""tools/dist_train.sh with two CPU processes over gloo."""
import json
import os
import os.path as osp
import socket
import subprocess
import sys

import pytest
import torch
from mmengine.config import Config

from helpers.tiny_demo import write_tiny_synthetic_mars
from mmtfclip.utils import replace_key

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))

# Imported by the training processes: records each step's identities and
# the final weights of every rank.
PROBE = '''
import json
import os

import torch
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper

from mmtfclip.registry import HOOKS


@HOOKS.register_module()
class RankProbeHook(Hook):

    def __init__(self):
        self.pids = []

    def after_train_iter(self, runner, batch_idx, data_batch=None,
                         outputs=None):
        self.pids.append(
            [int(s.gt_label) for s in data_batch['data_samples']])

    def after_train(self, runner):
        rank = os.environ['RANK']
        model = runner.model
        if is_model_wrapper(model):
            model = model.module
        torch.save(model.state_dict(),
                   os.path.join(runner.work_dir, f'rank{rank}.pth'))
        with open(os.path.join(runner.work_dir, f'pids{rank}.json'),
                  'w') as f:
            json.dump(self.pids, f)
'''


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('data'))
    # 8 training identities with 4 tracklets each (2 cameras x 2).
    write_tiny_synthetic_mars(root, tracklets_per_id=2)
    return root


def _run_two_ranks(tmp_path, data_root, overrides):
    with open(tmp_path / 'rank_probe.py', 'w') as f:
        f.write(PROBE)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'tfclip_demo.py'))
    replace_key(cfg._cfg_dict, 'data_root', data_root)
    cfg.merge_from_dict({
        'model.head.num_classes':
        8,
        'model.backbone.num_cams':
        2,
        'train_cfg.max_epochs':
        1,
        'default_hooks.checkpoint.interval':
        1,
        'randomness.seed':
        0,
        'custom_imports':
        dict(imports=['rank_probe']),
        # The memory hook only (no evaluation), then the probe.
        'custom_hooks': [cfg.custom_hooks[0],
                         dict(type='RankProbeHook')],
        **overrides
    })
    config = str(tmp_path / 'dist_cfg.py')
    cfg.dump(config)
    work_dir = str(tmp_path / 'work')
    env = dict(
        os.environ,
        PYTHON=sys.executable,
        PORT=str(_free_port()),
        OMP_NUM_THREADS='1',
        PYTHONPATH=os.pathsep.join(
            [str(tmp_path), os.environ.get('PYTHONPATH', '')]))
    out = subprocess.run([
        'bash',
        osp.join(ROOT, 'tools', 'dist_train.sh'), config, '2', '--work-dir',
        work_dir, '--no-validate'
    ],
                         capture_output=True,
                         text=True,
                         env=env,
                         timeout=300)
    assert out.returncode == 0, out.stderr[-4000:] + out.stdout[-1000:]
    pids = []
    for rank in (0, 1):
        with open(osp.join(work_dir, f'pids{rank}.json')) as f:
            pids.append(json.load(f))
    weights = [
        torch.load(osp.join(work_dir, f'rank{rank}.pth'), weights_only=True)
        for rank in (0, 1)
    ]
    saved = torch.load(
        osp.join(work_dir, 'epoch_1.pth'), weights_only=False)['state_dict']
    # Both ranks end with the same weights, the ones the checkpoint holds.
    # BN running statistics are not weights: DDP broadcasts rank 0's at the
    # start of each forward, so after the last step each rank holds those
    # of its own batch (SyncBN, GPU only, would make them equal).
    assert weights[0].keys() == weights[1].keys() == saved.keys()
    running = ('running_mean', 'running_var', 'num_batches_tracked')
    compared = [k for k in weights[0] if not k.endswith(running)]
    assert len(compared) > 50
    for key in compared:
        assert torch.equal(weights[0][key], weights[1][key]), key
        assert torch.equal(weights[0][key], saved[key]), key
    assert weights[0]['head.clip_memory'].abs().sum() > 0
    return pids


def test_two_ranks_disjoint_identities_same_weights(tmp_path, data_root):
    # Per-rank batches (the default): 2 identities x 2 tracklets on each
    # rank, 4 identities a step, 16 groups: 4 steps with the longest
    # schedule (the authors' greedy epoch may stop a step earlier).
    pids = _run_two_ranks(
        tmp_path, data_root, {
            'train_dataloader.batch_size': 4,
            'train_dataloader.sampler.batch_size': 4,
            'train_dataloader.sampler.num_instances': 2,
            'train_dataloader.sampler.mode': 'longest',
        })
    assert len(pids[0]) == len(pids[1]) == 4
    for step0, step1 in zip(*pids):
        assert len(step0) == len(step1) == 4
        assert len(set(step0)) == len(set(step1)) == 2
        assert not set(step0) & set(step1)


def test_two_ranks_split_the_global_batch(tmp_path, data_root):
    # The entry configs' mode: one global batch of 2 identities x 4
    # tracklets a step, one identity on each rank, which only the triplet
    # loss mined across the ranks can train.
    pids = _run_two_ranks(
        tmp_path, data_root, {
            'train_dataloader.sampler.batch_size': 8,
            'train_dataloader.sampler.split_global_batch': True,
            'model.head.loss_triplet.gather': True,
            'sync_bn': 'torch',
        })
    assert len(pids[0]) == len(pids[1]) == 4
    for step0, step1 in zip(*pids):
        assert len(step0) == len(step1) == 4
        assert len(set(step0)) == len(set(step1)) == 1
        assert step0[0] != step1[0]
