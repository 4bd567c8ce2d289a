# Copyright (c) mmtfclip contributors. All rights reserved.
import os.path as osp

import numpy as np
import pytest
import torch
from mmengine.config import Config

from mmtfclip.utils import launch
from mmtfclip.utils.launch import (amp_dtype, epoch_worker_init_fn,
                                   fit_global_batch, launcher_world_size,
                                   set_dataloader_defaults, setup_distributed)

CONFIGS = osp.join(osp.dirname(__file__), '..', '..', 'configs')


def _cfg(**loader):
    return Config(dict(train_dataloader=dict(batch_size=2, **loader)))


def test_dataloader_defaults_fill_in_what_can_work():
    cfg = _cfg(num_workers=0)
    set_dataloader_defaults(cfg)
    loader = cfg.train_dataloader
    assert loader.collate_fn == dict(type='default_collate')
    assert loader.pin_memory == torch.cuda.is_available()
    # persistent_workers raises with num_workers=0 in PyTorch.
    assert loader.persistent_workers is False

    # Training workers start again each epoch (exact resume); evaluation
    # workers are kept.
    cfg = _cfg(num_workers=2)
    cfg.val_dataloader = dict(batch_size=1, num_workers=2)
    set_dataloader_defaults(cfg)
    assert cfg.train_dataloader.persistent_workers is False
    assert cfg.val_dataloader.persistent_workers is True
    # Dense test tracklets differ in their number of clips: the data
    # preprocessor batches them, not the collate function.
    assert cfg.val_dataloader.collate_fn == dict(type='pseudo_collate')


def test_persistent_workers_without_workers_is_set_right_and_logged(
        monkeypatch):
    messages = []
    monkeypatch.setattr(launch, 'print_log',
                        lambda msg, **kwargs: messages.append(msg))
    cfg = _cfg(num_workers=0, persistent_workers=True)
    set_dataloader_defaults(cfg)
    assert cfg.train_dataloader.persistent_workers is False
    assert any('train_dataloader.persistent_workers=True needs worker' in m
               and 'num_workers is 0' in m for m in messages)


def test_command_line_flags_override_the_config():
    cfg = _cfg(num_workers=2, pin_memory=True, persistent_workers=True)
    set_dataloader_defaults(cfg, pin_memory=False, persistent_workers=False)
    assert cfg.train_dataloader.pin_memory is False
    assert cfg.train_dataloader.persistent_workers is False


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only box')
def test_amp_needs_a_gpu():
    with pytest.raises(RuntimeError, match='--amp needs a CUDA GPU'):
        amp_dtype()


@pytest.mark.parametrize('world_size', [1, 2, 8])
def test_entry_config_keeps_the_global_batch(world_size):
    cfg = Config.fromfile(osp.join(CONFIGS, 'tfclip_mars.py'))
    fit_global_batch(cfg, world_size)
    assert cfg.train_dataloader.batch_size * world_size == 16
    assert cfg.train_dataloader.sampler.batch_size == 16
    assert cfg.model.head.loss_triplet.gather is True
    assert cfg.sync_bn == 'torch'
    with pytest.raises(ValueError, match='cannot be split evenly across 3'):
        fit_global_batch(cfg, 3)


def test_per_rank_configs_are_left_alone():
    one = Config.fromfile(
        osp.join(CONFIGS, 'tfclip',
                 'tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py'))
    scaled = Config.fromfile(
        osp.join(CONFIGS, 'tfclip',
                 'tfclip_vit-b16-clip-openai-pre_8xb16-t8-80e_mars.py'))
    for cfg in (one, scaled):
        fit_global_batch(cfg, 8)
        assert cfg.train_dataloader.batch_size == 16
    assert not one.auto_scale_lr.enable and scaled.auto_scale_lr.enable
    paper = Config.fromfile(
        osp.join(CONFIGS, 'tfclip',
                 'tfclip_vit-b16-clip-openai-pre_8xb2-t8-80e_mars.py'))
    fit_global_batch(paper, 8)
    assert paper.train_dataloader.batch_size == 2


def test_launcher_world_size(monkeypatch):
    assert launcher_world_size('none') == 1
    monkeypatch.setenv('WORLD_SIZE', '8')
    assert launcher_world_size('pytorch') == 8
    monkeypatch.delenv('SLURM_NTASKS', raising=False)
    with pytest.raises(RuntimeError, match='SLURM_NTASKS'):
        launcher_world_size('slurm')


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only box')
def test_cpu_processes_drop_sync_bn(monkeypatch):
    # An initialised group is reused; pretend torchrun started it.
    monkeypatch.setattr(torch.distributed, 'is_initialized', lambda: True)
    monkeypatch.setattr(torch.distributed, 'get_rank', lambda: 0)
    monkeypatch.setattr(torch.distributed, 'get_world_size', lambda: 2)
    cfg = Config(dict(sync_bn='torch'))
    setup_distributed(cfg, 'pytorch')
    assert cfg.sync_bn is None
    assert cfg.model_wrapper_cfg.device_ids is None
    assert cfg.env_cfg.dist_cfg == dict(backend='gloo')


class _RandomDataset(torch.utils.data.Dataset):
    """The numbers a transform would draw, per item."""

    def __len__(self):
        return 4

    def __getitem__(self, idx):
        return np.random.rand()


def _epoch_draws(main_seed):
    # The main process's generator at the epoch start (EpochSeedHook).
    torch.manual_seed(main_seed)
    loader = torch.utils.data.DataLoader(
        _RandomDataset(), num_workers=1, worker_init_fn=epoch_worker_init_fn)
    return [float(x) for x in loader]


def test_training_workers_follow_the_epoch_seed():
    cfg = _cfg(num_workers=1)
    set_dataloader_defaults(cfg)
    assert cfg.train_dataloader.worker_init_fn == dict(
        type='epoch_worker_init_fn')
    first = _epoch_draws(1)
    assert first == _epoch_draws(1)
    assert first != _epoch_draws(2)
