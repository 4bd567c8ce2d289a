# Copyright (c) mmtfclip contributors. All rights reserved.
"""The contract every temporal neck shares: tokens [B, T, L, C] in, frame
features [B, T, C] and sequence features [B, C] out."""
import pytest
import torch

from mmtfclip.models.necks import BaseTemporalNeck
from mmtfclip.registry import MODELS

C, T, L = 16, 3, 5
NECKS = [
    dict(type='TemporalMemoryDiffusion', num_heads=2),
    dict(type='TemporalMemoryDiffusion', num_heads=2, with_tmc=False),
    dict(type='TemporalMemoryDiffusion', num_heads=2, with_md=False),
    dict(type='TemporalAvgPool'),
    dict(type='TemporalConv1d'),
    dict(type='TemporalConv1d', kernel_size=5),
    dict(type='TemporalTransformer', num_heads=2, num_layers=2),
    dict(type='TemporalTransformer', num_heads=2, with_cls_token=True),
]
IDS = [
    '-'.join(f'{k}={v}' for k, v in cfg.items() if k != 'num_heads')
    for cfg in NECKS
]


def build(cfg, **kwargs):
    torch.manual_seed(0)
    return MODELS.build(dict(cfg, embed_dims=C, num_frames=T, **kwargs))


@pytest.mark.parametrize('cfg', NECKS, ids=IDS)
def test_shapes_and_refusals(cfg):
    neck = build(cfg)
    assert isinstance(neck, BaseTemporalNeck)
    assert neck.embed_dims == C and neck.num_frames == T
    frame_feats, seq_feats = neck(torch.randn(2, T, L, C))
    assert frame_feats.shape == (2, T, C) and seq_feats.shape == (2, C)
    assert torch.isfinite(frame_feats).all()
    name = cfg['type']
    with pytest.raises(
            ValueError,
            match=f'{name} got clips of 4 frames '
            f'but model.neck.num_frames={T}'):
        neck(torch.randn(2, 4, L, C))
    with pytest.raises(
            ValueError, match=rf'{name} expects tokens '
            rf'\[B, T, L, {C}\]'):
        neck(torch.randn(2, T, L, C + 1))
    with pytest.raises(ValueError, match='expects tokens'):
        neck(torch.randn(T, L, C))


@pytest.mark.parametrize('cfg', NECKS, ids=IDS)
def test_gradients_and_detached_input(cfg):
    x = torch.randn(2, T, L, C, requires_grad=True)
    neck = build(cfg)
    frame_feats, seq_feats = neck(x)
    if cfg['type'] == 'TemporalAvgPool':
        # No parameters: nothing of a detached input is left to train.
        assert not frame_feats.requires_grad
    else:
        (frame_feats.square().sum() + seq_feats.square().sum()).backward()
        for name, param in neck.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert x.grad is None
    attached = build(cfg, detach_input=False)
    attached(x)[1].square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


@pytest.mark.parametrize('cfg', NECKS, ids=IDS)
def test_frames_interact_unless_the_neck_has_no_temporal_mixing(cfg):
    """Changing frame 0 changes frame 2's feature iff the neck mixes frames
    (TAP does not; TMD without TMC only diffuses a frame's own message)."""
    neck = build(cfg).eval()
    if cfg['type'] == 'TemporalConv1d':
        # Every tap of the kernel, not only the shift it starts as.
        torch.nn.init.normal_(neck.conv.weight)
    x = torch.randn(1, T, L, C)
    y = x.clone()
    # Not a constant: a LayerNorm would remove it.
    y[:, 0] += torch.randn(L, C)
    changed = not torch.allclose(neck(x)[0][:, 2], neck(y)[0][:, 2])
    isolated = cfg['type'] == 'TemporalAvgPool' or cfg.get('with_tmc') is False
    # A kernel of 3 reaches one frame either side, 5 reaches two.
    short_kernel = cfg['type'] == 'TemporalConv1d' and cfg.get(
        'kernel_size', 3) == 3
    assert changed == (not isolated and not short_kernel)
