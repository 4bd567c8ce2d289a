# Copyright (c) mmtfclip contributors. All rights reserved.
"""A run killed with SIGKILL mid-epoch and resumed with ``--resume``
continues with exactly the losses of the run that was never interrupted."""
import glob
import json
import os
import os.path as osp
import signal
import subprocess
import sys
import time

from mmengine.config import Config

from helpers.tiny_demo import write_tiny_synthetic_mars
from mmtfclip.utils import replace_key

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
EPOCHS, STEPS = 4, 8  # 8 training identities x 4 tracklets, 2 x 2 a batch


def _write_config(tmp_path):
    data_root = str(tmp_path / 'data')
    write_tiny_synthetic_mars(data_root, tracklets_per_id=2)
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'tfclip_demo.py'))
    replace_key(cfg._cfg_dict, 'data_root', data_root)
    cfg.merge_from_dict({
        'model.head.num_classes': 8,
        'model.backbone.num_cams': 2,
        'train_dataloader.batch_size': 4,
        'train_dataloader.sampler.batch_size': 4,
        'train_dataloader.sampler.num_instances': 2,
        'train_cfg.max_epochs': EPOCHS,
        'train_cfg.val_interval': 2,
        # Every epoch, the last 2 kept, plus the best.
        'default_hooks.checkpoint.interval': 1,
        'default_hooks.checkpoint.max_keep_ckpts': 2,
        'default_hooks.checkpoint.save_best': 'reid/mAP',
        'default_hooks.checkpoint.rule': 'greater',
        # Each iteration's own loss in vis_data/scalars.json.
        'default_hooks.logger.interval': 1,
        'log_processor.window_size': 1,
        'randomness': dict(seed=0, deterministic=True),
    })
    path = str(tmp_path / 'resume_cfg.py')
    cfg.dump(path)
    return path


def _train(config, work_dir, *extra):
    env = dict(os.environ, OMP_NUM_THREADS='1')
    command = [
        sys.executable,
        osp.join(ROOT, 'tools', 'train.py'), config, '--work-dir', work_dir
    ]
    return subprocess.Popen([*command, *extra],
                            stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT,
                            text=True,
                            env=env)


def _losses(work_dir, running=False):
    """``{iteration: loss}`` from every run logged in ``work_dir``; the
    last line of a ``running`` one may be half written."""
    losses = {}
    for path in glob.glob(osp.join(work_dir, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            lines = f.read().splitlines()
        if running and lines and not lines[-1].endswith('}'):
            lines.pop()
        for line in lines:
            record = json.loads(line)
            if 'loss' in record:
                losses[record['step']] = record['loss']
    return losses


def _finish(proc):
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0, out[-4000:]
    return out


def test_resume_after_kill_continues_the_same_run(tmp_path):
    config = _write_config(tmp_path)
    straight_dir = str(tmp_path / 'straight')
    straight = _train(config, straight_dir)

    # The same run, killed with SIGKILL a few iterations into epoch 3.
    killed_dir = str(tmp_path / 'killed')
    killed = _train(config, killed_dir)
    deadline = time.time() + 600
    while time.time() < deadline and killed.poll() is None:
        if osp.isfile(osp.join(killed_dir, 'epoch_2.pth')) and max(
                _losses(killed_dir, running=True), default=0) >= 2 * STEPS + 2:
            break
        time.sleep(0.02)
    assert killed.poll() is None, 'the run ended before it could be killed'
    killed.send_signal(signal.SIGKILL)
    killed.communicate(timeout=60)
    assert not osp.isfile(osp.join(killed_dir, 'epoch_3.pth'))
    logged_before_kill = max(_losses(killed_dir))
    assert 2 * STEPS < logged_before_kill < 3 * STEPS
    # The memory must come from the checkpoint, not from this cache or a
    # rebuild with the updated encoder.
    os.remove(osp.join(killed_dir, 'clip_memory.pth'))

    resumed_out = _finish(_train(config, killed_dir, '--resume'))
    straight_out = _finish(straight)
    assert 'kept the memory restored from the checkpoint' in resumed_out
    assert 'Evaluating the starting weights' in straight_out
    assert 'Evaluating the starting weights' not in resumed_out

    expected = _losses(straight_dir)
    assert sorted(expected) == list(range(1, EPOCHS * STEPS + 1))
    resumed = {}
    for path in glob.glob(
            osp.join(killed_dir, '*', 'vis_data', 'scalars.json')):
        with open(path) as f:
            records = [json.loads(line) for line in f]
        steps = [r['step'] for r in records if 'loss' in r]
        if steps and steps[0] > 1:
            resumed = {r['step']: r['loss'] for r in records if 'loss' in r}
    assert sorted(resumed) == list(range(2 * STEPS + 1, EPOCHS * STEPS + 1))
    for step, loss in resumed.items():
        assert abs(loss - expected[step]) <= 1e-6 * max(1., abs(loss)), (
            step, loss, expected[step])

    # Checkpoints every epoch, the last 2 kept, plus the best.
    for work_dir in (straight_dir, killed_dir):
        kept = sorted(
            osp.basename(p)
            for p in glob.glob(osp.join(work_dir, 'epoch_*.pth')))
        assert kept == ['epoch_3.pth', 'epoch_4.pth']
        assert glob.glob(osp.join(work_dir, 'best_reid_mAP_epoch_*.pth'))
