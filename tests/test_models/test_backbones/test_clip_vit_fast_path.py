# Copyright (c) mmtfclip contributors. All rights reserved.
import shutil

import pytest
import torch
import torch.nn as nn
from open_clip.transformer import LayerNormFp32, QuickGELU, Transformer

from mmtfclip.models.backbones import CLIPViT
from mmtfclip.models.utils.attention import MultiheadAttention

_ARCH = dict(width=64, layers=2, heads=4, patch_size=8, output_dim=32)


def _vit(**kwargs):
    torch.manual_seed(0)
    return CLIPViT(
        arch=_ARCH, img_size=(32, 16), stride_size=8, num_cams=2, **kwargs)


def _inputs():
    gen = torch.Generator().manual_seed(1)
    return torch.randn(3, 3, 32, 16, generator=gen), torch.tensor([0, 1, 1])


def test_blocks_match_open_clip_transformer():
    """Same keys and outputs as open_clip's sequence of CLIP blocks."""
    vit = _vit().eval()
    reference = Transformer(
        64, 2, 4, act_layer=QuickGELU, norm_layer=LayerNormFp32).eval()
    ours = vit.transformer.state_dict()
    assert list(ours) == list(reference.state_dict())
    reference.load_state_dict(ours)
    x = torch.randn(2, 5, 64)
    out = x
    for block in vit.transformer.resblocks:
        assert isinstance(block.attn, MultiheadAttention)
        out = block(out)
    torch.testing.assert_close(out, reference(x), atol=1e-6, rtol=1e-5)


def test_attention_conversion_shares_parameters_and_draws_nothing():
    torch.manual_seed(0)
    attn = nn.MultiheadAttention(16, 2, batch_first=True)
    state = torch.random.get_rng_state()
    ours = MultiheadAttention.from_torch(attn)
    assert torch.equal(torch.random.get_rng_state(), state)
    assert ours.in_proj_weight is attn.in_proj_weight
    assert ours.out_proj is attn.out_proj
    x = torch.randn(2, 7, 16)
    torch.testing.assert_close(
        ours(x), attn(x, x, x, need_weights=False)[0], atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match='bias_k'):
        MultiheadAttention.from_torch(
            nn.MultiheadAttention(16, 2, add_bias_kv=True))


def test_layer_norm_keeps_dtype_without_fp32_round_trip():
    norm = _vit().ln_pre
    x = torch.randn(4, 9, 64).bfloat16()
    reference = LayerNormFp32(64)
    reference.load_state_dict(norm.state_dict())
    with torch.autocast('cpu', dtype=torch.bfloat16):
        out = norm(x)
    assert out.dtype == torch.bfloat16
    torch.testing.assert_close(out, reference(x), atol=1e-2, rtol=1e-2)
    # float32 inputs give float32 outputs, as before.
    assert norm(x.float()).dtype == torch.float32


def test_with_cp_gives_same_loss_and_gradients():
    x, cams = _inputs()
    grads, losses = [], []
    for with_cp in (False, True):
        vit = _vit(with_cp=with_cp).train()
        assert vit.with_cp is with_cp
        tokens, proj = vit(x.clone().requires_grad_(), cams)
        loss = tokens.square().mean() + proj[:, 0].abs().sum()
        loss.backward()
        losses.append(loss.detach())
        grads.append({n: p.grad for n, p in vit.named_parameters()})
    torch.testing.assert_close(losses[1], losses[0], atol=1e-6, rtol=0)
    assert grads[0].keys() == grads[1].keys()
    for name, grad in grads[0].items():
        torch.testing.assert_close(
            grads[1][name], grad, atol=1e-6, rtol=0, msg=name)


def test_with_cp_is_skipped_without_gradients():
    vit = _vit(with_cp=True).eval()
    x, cams = _inputs()
    with torch.no_grad():
        tokens, _ = vit(x, cams)
    assert not tokens.requires_grad


@pytest.mark.skipif(
    shutil.which('cc') is None and shutil.which('gcc') is None,
    reason='torch.compile (inductor) on the CPU needs a C compiler')
def test_compiled_blocks_match_eager():
    vit = _vit().eval()
    x, cams = _inputs()
    with torch.no_grad():
        eager = vit(x, cams)
        for block in vit.transformer.resblocks:
            block.compile()
        compiled = vit(x, cams)
    # Keys are those of the plain model (compile() wraps in place).
    assert 'transformer.resblocks.0.attn.in_proj_weight' in vit.state_dict()
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-4)
