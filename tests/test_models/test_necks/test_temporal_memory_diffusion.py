# Copyright (c) mmtfclip contributors. All rights reserved.
"""TMD against the paper's equations, written out per sequence and frame."""
import pytest
import torch
import torch.nn as nn

from mmtfclip.models.necks import TemporalMemoryDiffusion
from mmtfclip.models.utils import MultiheadAttention
from mmtfclip.registry import MODELS


def reference_attention(q_in, kv_in, attn: MultiheadAttention):
    """softmax(Q K^T / sqrt(d)) V per head, then the output projection."""
    c, h = attn.embed_dims, attn.num_heads
    w_q, w_k, w_v = attn.in_proj_weight.chunk(3)
    if attn.in_proj_bias is None:
        b_q = b_k = b_v = torch.zeros(c)
    else:
        b_q, b_k, b_v = attn.in_proj_bias.chunk(3)
    q, k, v = q_in @ w_q.T + b_q, kv_in @ w_k.T + b_k, kv_in @ w_v.T + b_v
    d = c // h
    heads = []
    for i in range(h):
        s = slice(i * d, (i + 1) * d)
        weights = torch.softmax(q[:, s] @ k[:, s].T / d**0.5, dim=-1)
        heads.append(weights @ v[:, s])
    return torch.cat(
        heads, dim=1) @ attn.out_proj.weight.T + (
            attn.out_proj.bias)


def quick_gelu(x):
    return x * torch.sigmoid(1.702 * x)


def reference_tmd(x, neck):
    """Eq. of TMC and MD for every sequence b and frame t, one at a time."""
    batch, frames = x.shape[:2]
    frame_feats = torch.empty(batch, frames, x.shape[-1])
    for b in range(batch):
        tokens = [x[b, t] for t in range(frames)]
        for layer in neck.layers:
            # TMC: a message token per frame from the mean of its tokens,
            # then the T message tokens attend to each other.
            msg = torch.stack([layer.message_fc(f.mean(0)) for f in tokens])
            msg = msg + reference_attention(
                layer.message_norm(msg), layer.message_norm(msg),
                layer.message_attn)
            # MD: the frame's message token joins its tokens.
            new_tokens = []
            for t, f in enumerate(tokens):
                f = torch.cat([f, msg[t:t + 1]])
                y = layer.norm1(f)
                f = f + reference_attention(y, y, layer.attn)
                y = layer.norm2(f)
                f = f + layer.mlp.fc2(quick_gelu(layer.mlp.fc1(y)))
                new_tokens.append(f)
            tokens = new_tokens
        for t, f in enumerate(tokens):
            frame_feats[b, t] = f.mean(0)
    return frame_feats, frame_feats.mean(1)


def _perturb_norms(module):
    # LayerNorms start as identity maps; make them matter.
    gen = torch.Generator().manual_seed(3)
    for m in module.modules():
        if isinstance(m, nn.LayerNorm):
            m.weight.data = 1 + 0.2 * torch.randn(
                m.weight.shape, generator=gen)
            m.bias.data = 0.2 * torch.randn(m.bias.shape, generator=gen)


@pytest.mark.parametrize('num_layers', [1, 2])
def test_tmd_matches_equations(num_layers):
    torch.manual_seed(0)
    neck = MODELS.build(
        dict(
            type='TemporalMemoryDiffusion',
            embed_dims=32,
            num_heads=4,
            num_layers=num_layers,
            num_frames=3))
    _perturb_norms(neck)
    x = torch.randn(2, 3, 5, 32)
    frame_feats, seq_feats = neck(x)
    assert frame_feats.shape == (2, 3, 32) and seq_feats.shape == (2, 32)
    expected_frames, expected_seq = reference_tmd(x, neck)
    torch.testing.assert_close(frame_feats, expected_frames)
    torch.testing.assert_close(seq_feats, expected_seq)


def test_tmd_mean_includes_message_token():
    """Zeroing every residual branch leaves [tokens, message] averaged."""
    neck = TemporalMemoryDiffusion(
        embed_dims=8, num_heads=2, num_layers=1, num_frames=2)
    layer = neck.layers[0]
    for m in (layer.message_attn.out_proj, layer.attn.out_proj, layer.mlp.fc2):
        nn.init.zeros_(m.weight)
        nn.init.zeros_(m.bias)
    x = torch.randn(1, 2, 3, 8)
    frame_feats, _ = neck(x)
    message = layer.message_fc(x.mean(2))
    expected = (x.sum(2) + message) / 4
    torch.testing.assert_close(frame_feats, expected)


def test_tmd_detaches_input_by_default():
    x = torch.randn(1, 2, 3, 8, requires_grad=True)
    neck = TemporalMemoryDiffusion(embed_dims=8, num_heads=2, num_frames=2)
    neck(x)[1].sum().backward()
    assert x.grad is None
    attached = TemporalMemoryDiffusion(
        embed_dims=8, num_heads=2, num_frames=2, detach_input=False)
    attached(x)[1].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_tmd_refuses_other_clip_length_and_width():
    neck = TemporalMemoryDiffusion(embed_dims=8, num_heads=2, num_frames=4)
    with pytest.raises(ValueError, match='num_frames=4'):
        neck(torch.randn(1, 3, 5, 8))
    with pytest.raises(ValueError, match=r'\[B, T, L, 8\]'):
        neck(torch.randn(1, 4, 5, 16))


def test_attention_equals_torch_multihead_attention():
    """Same numbers and state-dict keys as nn.MultiheadAttention."""
    torch.manual_seed(0)
    ours = MultiheadAttention(16, 4)
    theirs = nn.MultiheadAttention(16, 4)
    assert set(ours.state_dict()) == set(theirs.state_dict())
    theirs.load_state_dict(ours.state_dict())
    q, kv = torch.randn(2, 5, 16), torch.randn(2, 7, 16)
    expected_self = theirs(
        q.transpose(0, 1),
        q.transpose(0, 1),
        q.transpose(0, 1),
        need_weights=False)[0].transpose(0, 1)
    torch.testing.assert_close(ours(q), expected_self)
    expected_cross = theirs(
        q.transpose(0, 1),
        kv.transpose(0, 1),
        kv.transpose(0, 1),
        need_weights=False)[0].transpose(0, 1)
    torch.testing.assert_close(ours(q, kv), expected_cross)
    # Without input biases (SSP's attention) the projection is bias-free.
    no_bias = MultiheadAttention(16, 4, qkv_bias=False)
    assert no_bias.in_proj_bias is None
    torch.testing.assert_close(
        no_bias(q, kv)[1], reference_attention(q[1], kv[1], no_bias))
    with pytest.raises(ValueError, match='must divide'):
        MultiheadAttention(10, 4)


# Parameter names of one default layer: checkpoints, the converter of the
# authors' weights and tools/analysis_tools/verify_against_official.py rely
# on them.
DEFAULT_LAYER_KEYS = [
    'message_fc.weight', 'message_fc.bias', 'message_norm.weight',
    'message_norm.bias', 'message_attn.in_proj_weight',
    'message_attn.in_proj_bias', 'message_attn.out_proj.weight',
    'message_attn.out_proj.bias', 'norm1.weight', 'norm1.bias',
    'attn.in_proj_weight', 'attn.in_proj_bias', 'attn.out_proj.weight',
    'attn.out_proj.bias', 'norm2.weight', 'norm2.bias', 'mlp.fc1.weight',
    'mlp.fc1.bias', 'mlp.fc2.weight', 'mlp.fc2.bias'
]


def _tmd(**kwargs):
    torch.manual_seed(0)
    return TemporalMemoryDiffusion(
        embed_dims=16, num_heads=2, num_frames=3, **kwargs)


def test_tmd_switches_default_on_and_leave_the_default_unchanged():
    default, explicit = _tmd(), _tmd(with_tmc=True, with_md=True)
    assert list(default.layers[0].state_dict()) == DEFAULT_LAYER_KEYS
    for key, value in default.state_dict().items():
        assert torch.equal(value, explicit.state_dict()[key]), key
    x = torch.randn(2, 3, 4, 16)
    for a, b in zip(default(x), explicit(x)):
        assert torch.equal(a, b)


@pytest.mark.parametrize('num_layers', [1, 2])
def test_tmd_without_md(num_layers):
    """Message tokens made and exchanged (TMC) but not diffused: a frame's
    feature is its tokens' mean plus its message tokens' mean."""
    full = _tmd(num_layers=num_layers)
    neck = _tmd(num_layers=num_layers, with_md=False)
    _perturb_norms(full)
    missing, unexpected = neck.load_state_dict(full.state_dict(), strict=False)
    assert not missing
    assert {k.split('.', 2)[2].split('.')[0]
            for k in unexpected} == {'norm1', 'attn', 'norm2', 'mlp'}
    x = torch.randn(2, 3, 4, 16)
    tokens = x
    for layer in neck.layers:
        msg = layer.message_fc(tokens.mean(2))
        msg = msg + torch.stack([
            reference_attention(
                layer.message_norm(m), layer.message_norm(m),
                layer.message_attn) for m in msg
        ])
        tokens = torch.cat([tokens, msg.unsqueeze(2)], dim=2)
    expected = x.mean(2) + tokens[:, :, 4:].mean(2)
    frame_feats, seq_feats = neck(x)
    torch.testing.assert_close(frame_feats, expected)
    torch.testing.assert_close(seq_feats, expected.mean(1))
    assert not torch.allclose(frame_feats, full(x)[0])


def test_tmd_without_tmc():
    """Message tokens made and diffused (MD) without attending to each
    other: the default with TMC's attention branch zeroed."""
    full = _tmd()
    neck = _tmd(with_tmc=False)
    _perturb_norms(full)
    missing, unexpected = neck.load_state_dict(full.state_dict(), strict=False)
    assert not missing
    assert {k.split('.', 2)[2].split('.')[0]
            for k in unexpected} == {'message_norm', 'message_attn'}
    x = torch.randn(2, 3, 4, 16)
    frame_feats, seq_feats = neck(x)
    assert not torch.allclose(frame_feats, full(x)[0])
    out_proj = full.layers[0].message_attn.out_proj
    nn.init.zeros_(out_proj.weight)
    nn.init.zeros_(out_proj.bias)
    torch.testing.assert_close(frame_feats, full(x)[0])
    torch.testing.assert_close(seq_feats, full(x)[1])


def test_tmd_refuses_both_parts_off():
    with pytest.raises(ValueError, match='TemporalAvgPool'):
        _tmd(with_tmc=False, with_md=False)
