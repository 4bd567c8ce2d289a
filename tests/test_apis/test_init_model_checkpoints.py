# Copyright (c) mmtfclip contributors. All rights reserved.
"""init_model's checkpoint read: what it refuses and how it says so."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from mmtfclip.apis import CheckpointMismatchError, init_model
from mmtfclip.fileio import UnsafeFileError, save_file
from mmtfclip.registry import MODELS
from mmtfclip.testing import tiny_clip_arch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


def tiny_cfg(width=64) -> Config:
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'tfclip_demo.py'))
    cfg.model.backbone.update(
        arch=tiny_clip_arch(width=width, patch_size=8, embed_dim=64),
        num_cams=2)
    cfg.model.neck.update(embed_dims=width, num_heads=2)
    cfg.model.head.update(num_classes=4, in_channels=width)
    return cfg


@pytest.fixture(scope='module')
def state_dict():
    torch.manual_seed(0)
    return MODELS.build(tiny_cfg().model).state_dict()


def test_width_mismatch_is_named_as_such(state_dict, tmp_path):
    path = str(tmp_path / 'w64.pth')
    save_file(dict(state_dict=state_dict), path)
    model = init_model(tiny_cfg(), path)
    assert torch.equal(model.backbone.conv1.weight,
                       state_dict['backbone.conv1.weight'])
    with pytest.raises(CheckpointMismatchError) as info:
        init_model(tiny_cfg(width=32), path)
    text = str(info.value)
    assert 'patch positions' not in text
    assert ("positional embedding is (33, 64), the config's (33, 32): the "
            'backbone width differs (64 vs 32') in text


def test_broken_checkpoints_name_the_file(state_dict, tmp_path):
    nan = dict(state_dict)
    nan['neck.layers.0.attn.in_proj_weight'] = torch.full_like(
        nan['neck.layers.0.attn.in_proj_weight'], float('nan'))
    path = str(tmp_path / 'nan.pth')
    torch.save(dict(state_dict=nan), path)
    with pytest.raises(
            UnsafeFileError,
            match=r'checkpoint .*nan.pth holds NaN .*'
            r'neck.layers.0.attn.in_proj_weight'):
        init_model(tiny_cfg(), path)

    good = str(tmp_path / 'good.pth')
    save_file(dict(state_dict=state_dict), good)
    data = open(good, 'rb').read()
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(data[:len(data) // 3])
    with pytest.raises(UnsafeFileError, match='cut.pth is truncated'):
        init_model(tiny_cfg(), str(cut))
    with pytest.raises(FileNotFoundError, match='missing.pth does not exist'):
        init_model(tiny_cfg(), str(tmp_path / 'missing.pth'))
