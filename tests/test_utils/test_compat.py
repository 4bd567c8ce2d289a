# Copyright (c) mmtfclip contributors. All rights reserved.
"""Checkpoints saved by the project's runner load and resume on torch >= 2.6
with ``weights_only=True``."""
import os.path as osp

import pytest
import torch
import torch.nn as nn
from mmengine.model import BaseModel

from mmtfclip.engine.runner import ReIDRunner
from mmtfclip.registry import MODELS


@MODELS.register_module(force=True)
class _ToyRegressor(BaseModel):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 1)

    def forward(self, inputs, targets=None, mode='tensor'):
        out = self.fc(
            torch.stack(inputs) if isinstance(inputs, list) else inputs)
        if mode == 'loss':
            targets = torch.stack(targets) if isinstance(targets,
                                                         list) else targets
            return dict(loss=((out.squeeze(-1) - targets)**2).mean())
        return out


class _ToyDataset(torch.utils.data.Dataset):

    def __init__(self):
        gen = torch.Generator().manual_seed(0)
        self.x = torch.randn(16, 4, generator=gen)
        self.y = self.x.sum(1)

    def __len__(self):
        return len(self.x)

    def __getitem__(self, idx):
        return dict(inputs=self.x[idx], targets=self.y[idx])


def _runner(work_dir, max_epochs, **kwargs):
    return ReIDRunner(
        model=dict(type='_ToyRegressor'),
        work_dir=work_dir,
        train_dataloader=dict(
            dataset=_ToyDataset(),
            sampler=dict(type='DefaultSampler', shuffle=True),
            batch_size=4,
            num_workers=0),
        optim_wrapper=dict(optimizer=dict(type='Adam', lr=0.01)),
        # An explicit end: mmengine's default end is max_epochs, which
        # differs between the runs below.
        param_scheduler=dict(
            type='MultiStepLR', milestones=[2], by_epoch=True, end=3),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        default_hooks=dict(
            checkpoint=dict(type='CheckpointHook', interval=1),
            logger=dict(type='LoggerHook', interval=1)),
        randomness=dict(seed=0),
        default_scope='mmtfclip',
        **kwargs)


def test_runner_checkpoint_resumes(tmp_path):
    """Save with the Runner, then resume: epoch, weights, optimizer state
    and the scheduler continue where they were, and the resumed run ends
    with the weights of an uninterrupted one."""
    full = _runner(str(tmp_path / 'full'), max_epochs=3)
    full.train()
    full_state = {k: v.clone() for k, v in full.model.state_dict().items()}

    first = _runner(str(tmp_path / 'split'), max_epochs=2)
    first.train()
    ckpt = osp.join(tmp_path, 'split', 'epoch_2.pth')
    assert osp.isfile(ckpt)

    resumed = _runner(
        str(tmp_path / 'split'), max_epochs=3, resume=True, load_from=ckpt)
    resumed.train()
    assert resumed.train_loop.epoch == 3
    # The scheduler milestone at epoch 2 was restored, not replayed.
    assert resumed.optim_wrapper.get_lr()['lr'][0] == pytest.approx(1e-3)
    for k, v in resumed.model.state_dict().items():
        torch.testing.assert_close(v, full_state[k])
