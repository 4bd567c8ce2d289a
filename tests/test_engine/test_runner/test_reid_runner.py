# Copyright (c) mmtfclip contributors. All rights reserved.
"""ReIDRunner's checkpoint lifecycle: plain data read without running code,
refused when damaged or not fitting the config, resume that never starts
over, and a stop at the first non-finite loss."""
import os.path as osp
import shutil
import zipfile

import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import Hook
from mmengine.logging import MessageHub

from helpers.tiny_demo import run_python, write_tiny_synthetic_mars
from mmtfclip.apis import CheckpointMismatchError
from mmtfclip.apis.inference import _ID_KEYS
from mmtfclip.engine.hooks import NonFiniteLossError
from mmtfclip.engine.runner import from_plain_checkpoint, to_plain_checkpoint
from mmtfclip.fileio import UnsafeFileError, file_sha256, load_file, save_file
from mmtfclip.registry import HOOKS, RUNNERS
from mmtfclip.utils import set_data_root

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
DEMO = osp.join(ROOT, 'configs', 'tfclip_demo.py')
TINY = {
    'model.head.num_classes': 8,
    'model.backbone.num_cams': 2,
    'train_dataloader.batch_size': 4,
    'train_dataloader.sampler.batch_size': 4,
    'train_dataloader.sampler.num_instances': 2,
    'train_cfg.max_epochs': 1,
    'train_cfg.val_interval': 10,
    'default_hooks.checkpoint.interval': 1,
    'default_hooks.checkpoint.max_keep_ckpts': 3,
}


def _cfg(data_root, work_dir, **options):
    cfg = Config.fromfile(DEMO)
    set_data_root(cfg, data_root)
    cfg.merge_from_dict({
        **TINY,
        **{
            k: v
            for k, v in options.items() if k != 'custom_hooks'
        }
    })
    cfg.work_dir = work_dir
    # The CLIP-Memory is needed; the evaluation before training is not.
    cfg.custom_hooks = [
        h for h in cfg.custom_hooks if h['type'] != 'EvaluateBeforeTrainHook'
    ] + options.get('custom_hooks', [])
    return cfg


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """A tiny run of one epoch: ``(data_root, work_dir, epoch_1.pth)``."""
    root = tmp_path_factory.mktemp('runner')
    data_root = write_tiny_synthetic_mars(
        str(root / 'data'), tracklets_per_id=2)
    work_dir = str(root / 'work')
    RUNNERS.build(_cfg(data_root, work_dir)).train()
    return data_root, work_dir, osp.join(work_dir, 'epoch_1.pth')


def test_checkpoint_is_plain_data_and_resumes(trained, tmp_path):
    data_root, work_dir, ckpt = trained
    checkpoint = load_file(ckpt, what='checkpoint')  # weights_only=True
    assert 'mmtfclip_sha256' in checkpoint
    assert isinstance(checkpoint['message_hub']['log_scalars']['train/loss'],
                      dict)
    resumed_dir = str(tmp_path / 'resumed')
    shutil.copytree(work_dir, resumed_dir)
    with open(osp.join(resumed_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(resumed_dir, 'epoch_1.pth'))
    runner = RUNNERS.build(
        _cfg(
            data_root, resumed_dir, resume=True, **{'train_cfg.max_epochs':
                                                    2}))
    runner.train()
    assert runner.epoch == 2
    assert osp.isfile(osp.join(resumed_dir, 'epoch_2.pth'))
    # The restored buffer went on counting from the checkpoint's.
    losses = runner.message_hub.get_scalar('train/loss').data[0]
    assert len(losses) == 16


class _Payload:
    """Unpickling it would create ``marker``."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, 'w'))


def test_planted_payload_never_runs(trained, tmp_path):
    data_root, work_dir, ckpt = trained
    marker = str(tmp_path / 'payload_ran')
    checkpoint = torch.load(ckpt, weights_only=False)
    checkpoint['meta']['note'] = _Payload(marker)
    evil = str(tmp_path / 'evil.pth')
    torch.save(checkpoint, evil)
    config = str(tmp_path / 'tiny.py')
    _cfg(data_root, work_dir).dump(config)
    runs = {
        '--resume': [
            'tools/train.py', config, '--work-dir',
            str(tmp_path / 'w1'), '--resume', evil
        ],
        'load_from': [
            'tools/train.py', config, '--work-dir',
            str(tmp_path / 'w2'), '--cfg-options', f'load_from={evil}'
        ],
        'tools/test.py':
        ['tools/test.py', config, evil, '--work-dir',
         str(tmp_path / 'w3')],
    }
    for name, args in runs.items():
        out = run_python(args, cwd=ROOT, expect_success=False)
        assert 'evil.pth holds more than tensors' in out, (name, out[-3000:])
        assert not osp.exists(marker), name


def test_damaged_checkpoints_are_refused_by_name(trained, tmp_path):
    data_root, work_dir, ckpt = trained
    truncated = str(tmp_path / 'truncated.pth')
    with open(ckpt, 'rb') as f:
        data = f.read()
    with open(truncated, 'wb') as f:
        f.write(data[:len(data) // 2])

    # Flip one bit inside the stored bytes of the largest tensor: torch
    # does not check the zip CRC, the digest does.
    flipped = str(tmp_path / 'flipped.pth')
    with zipfile.ZipFile(ckpt) as archive:
        info = max(archive.infolist(), key=lambda i: i.file_size)
    offset = info.header_offset + 30 + len(info.filename.encode()) + len(
        info.extra) + info.file_size // 2
    corrupt = bytearray(data)
    corrupt[offset] ^= 0x10
    with open(flipped, 'wb') as f:
        f.write(bytes(corrupt))

    for path, message in ((truncated, 'truncated or corrupt'),
                          (flipped, 'does not match the content digest')):
        runner = RUNNERS.build(
            _cfg(data_root, str(tmp_path / 'w'), resume=True, load_from=path))
        with pytest.raises(UnsafeFileError, match=message) as error:
            runner.train()
        assert path in str(error.value)


def test_checkpoint_with_nan_weights_is_refused(trained, tmp_path):
    """A checkpoint with a valid digest but NaN weights (another run's
    divergence) is refused by name on load_from, before anything trains."""
    data_root, work_dir, ckpt = trained
    checkpoint = load_file(ckpt)
    name = next(k for k, v in checkpoint['state_dict'].items()
                if v.is_floating_point() and v.numel() > 1)
    checkpoint['state_dict'][name][0] = float('nan')
    nan = str(tmp_path / 'nan.pth')
    save_file(checkpoint, nan)
    runner = RUNNERS.build(_cfg(data_root, str(tmp_path / 'w'), load_from=nan))
    with pytest.raises(UnsafeFileError, match=r'nan\.pth holds NaN') as err:
        runner.train()
    assert name in str(err.value)


def test_resume_of_another_camera_count_is_refused(trained, tmp_path):
    data_root, work_dir, ckpt = trained
    runner = RUNNERS.build(
        _cfg(
            data_root,
            str(tmp_path / 'w'),
            resume=True,
            load_from=ckpt,
            **{'model.backbone.num_cams': 3}))
    with pytest.raises(CheckpointMismatchError, match='2 cameras'):
        runner.train()


def test_fine_tuning_skips_the_head_only_when_asked(trained, tmp_path):
    data_root, work_dir, ckpt = trained
    other_ids = load_file(ckpt)
    other_ids['state_dict'] = {
        k: torch.cat([v, v[:2]]) if k in _ID_KEYS else v
        for k, v in other_ids['state_dict'].items()
    }
    path = str(tmp_path / 'ten_ids.pth')
    save_file(other_ids, path)
    runner = RUNNERS.build(_cfg(data_root, str(tmp_path / 'w')))
    with pytest.raises(CheckpointMismatchError, match='identities'):
        runner.load_checkpoint(path)
    runner = RUNNERS.build(
        _cfg(data_root, str(tmp_path / 'w2'), load_from_skip_head=True))
    head = runner.model.head.cls_classifier.weight.detach().clone()
    runner.load_checkpoint(path)
    torch.testing.assert_close(runner.model.head.cls_classifier.weight, head)
    torch.testing.assert_close(runner.model.backbone.cam_embed,
                               other_ids['state_dict']['backbone.cam_embed'])


def test_resume_with_nothing_to_resume_is_an_error(trained, tmp_path):
    data_root, work_dir, ckpt = trained
    run_dir = tmp_path / 'earlier'
    run_dir.mkdir()
    shutil.copy(ckpt, run_dir / 'epoch_1.pth')
    digest = file_sha256(str(run_dir / 'epoch_1.pth'))
    pointer = str(run_dir / 'last_checkpoint')
    for content, message in ((None, 'does not exist'), ('', 'is empty'),
                             (str(tmp_path / 'gone.pth'),
                              'gone.pth, which does not exist')):
        if content is not None:
            with open(pointer, 'w') as f:
                f.write(content)
        runner = RUNNERS.build(_cfg(data_root, str(run_dir), resume=True))
        with pytest.raises(FileNotFoundError, match=message) as error:
            runner.train()
        assert pointer in str(error.value)
    missing = str(tmp_path / 'missing.pth')
    runner = RUNNERS.build(
        _cfg(data_root, str(run_dir), resume=True, load_from=missing))
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        runner.train()
    assert file_sha256(str(run_dir / 'epoch_1.pth')) == digest
    assert not osp.exists(run_dir / 'epoch_2.pth')


@HOOKS.register_module(force=True)
class _PoisonHook(Hook):
    """Makes the weights NaN before iteration ``at`` (1-based)."""

    def __init__(self, at):
        self.at = at

    def before_train_iter(self, runner, batch_idx, data_batch=None):
        if runner.iter + 1 == self.at:
            with torch.no_grad():
                runner.model.backbone.conv1.weight.fill_(float('nan'))


def test_non_finite_loss_stops_before_any_checkpoint(trained, tmp_path):
    data_root, work_dir, ckpt = trained
    run_dir = str(tmp_path / 'nan')
    shutil.copytree(work_dir, run_dir)
    with open(osp.join(run_dir, 'last_checkpoint'), 'w') as f:
        f.write(osp.join(run_dir, 'epoch_1.pth'))
    digest = file_sha256(osp.join(run_dir, 'epoch_1.pth'))
    runner = RUNNERS.build(
        _cfg(
            data_root,
            run_dir,
            resume=True,
            custom_hooks=[dict(type='_PoisonHook', at=11)],
            **{'train_cfg.max_epochs': 2}))
    with pytest.raises(
            NonFiniteLossError, match=r'iteration 11 .*loss_id=\[?nan'):
        runner.train()
    assert not osp.exists(osp.join(run_dir, 'epoch_2.pth'))
    assert file_sha256(osp.join(run_dir, 'epoch_1.pth')) == digest


def test_testing_keeps_the_training_config(trained):
    data_root, work_dir, ckpt = trained
    saved = osp.join(work_dir, 'tfclip_demo.py')
    with open(saved) as f:
        before = f.read()
    runner = RUNNERS.build(_cfg(data_root, work_dir, load_from=ckpt))
    assert 'reid/mAP' in runner.test()
    with open(saved) as f:
        assert f.read() == before
    assert osp.isfile(osp.join(runner.log_dir, 'tfclip_demo.py'))


def test_plain_checkpoint_round_trip_and_refusal():
    hub = MessageHub('plain_test')
    hub.update_scalar('train/loss', 1.5)
    hub.update_scalar('train/loss', np.float32(2.5))
    hub.update_info('best_score', np.float64(0.25))
    plain = to_plain_checkpoint(
        dict(message_hub=hub.state_dict(), meta=dict(ids=np.arange(3))))
    assert type(plain['message_hub']['runtime_info']['best_score']) is float
    assert isinstance(plain['meta']['ids'], torch.Tensor)
    restored = from_plain_checkpoint(plain)['message_hub']['log_scalars']
    np.testing.assert_array_equal(restored['train/loss'].data[0], [1.5, 2.5])
    with pytest.raises(TypeError, match=r'meta\.hook\.state is a builtins'):
        to_plain_checkpoint(dict(meta=dict(hook=dict(state=object()))))
