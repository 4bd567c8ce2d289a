# Copyright (c) mmtfclip contributors. All rights reserved.
import logging
import math

import pytest
import torch
import torch.nn as nn
from mmengine.logging import MMLogger
from open_clip.transformer import QuickGELU

from mmtfclip.models.backbones import CLIPViT
from mmtfclip.registry import MODELS
from mmtfclip.testing import (make_tiny_clip_state_dict, save_tiny_clip,
                              tiny_clip_arch)

TINY = tiny_clip_arch()


def _tiny_backbone(**kwargs) -> CLIPViT:
    """A tiny CLIPViT with the tiny CLIP weights loaded."""
    model = CLIPViT(arch=TINY, **kwargs)
    state_dict = make_tiny_clip_state_dict()
    visual = {
        k[len('visual.'):]: v
        for k, v in state_dict.items() if k.startswith('visual.')
    }
    # The tests below use the pretraining grid, so no resize is involved.
    missing, unexpected = model.load_state_dict(visual, strict=False)
    assert not unexpected and set(missing) <= {'cam_embed'}
    return model.eval()


def test_build_and_shapes():
    model = MODELS.build(
        dict(type='CLIPViT', arch=TINY, img_size=(64, 32), num_cams=3))
    assert isinstance(model, CLIPViT)
    assert model.embed_dims == 64 and model.out_dims == 32
    assert model.patch_grid == (4, 2) and model.num_cams == 3
    x = torch.randn(5, 3, 64, 32)
    tokens, proj = model(x, torch.tensor([0, 1, 2, 0, 1]))
    assert tokens.shape == (5, 1 + 4 * 2, 64)
    assert proj.shape == (5, 1 + 4 * 2, 32)
    tokens_no_cam, _ = model(x)
    assert tokens_no_cam.shape == tokens.shape


def test_named_arch_attributes():
    model = CLIPViT()
    assert (model.embed_dims, model.out_dims) == (768, 512)
    assert model.patch_grid == (16, 8)
    assert model.positional_embedding.shape == (1 + 16 * 8, 768)
    assert len(model.transformer.resblocks) == 12
    # Other open_clip names resolve to their sizes (not built: too big).
    settings, quick_gelu = CLIPViT._arch_settings('ViT-L-14')
    assert settings == dict(
        width=1024,
        layers=24,
        heads=16,
        patch_size=14,
        mlp_ratio=4.0,
        output_dim=768)
    assert not quick_gelu
    assert CLIPViT._arch_settings('ViT-B-32-quickgelu')[1]
    with pytest.raises(KeyError, match='not an open_clip model name'):
        CLIPViT('ViT-Nope-16')
    with pytest.raises(ValueError, match='not an OpenAI-style CLIP ViT'):
        CLIPViT('ViT-B-16-SigLIP')
    with pytest.raises(KeyError, match='custom CLIPViT arch needs'):
        CLIPViT(dict(width=64, layers=2))


def test_state_dict_keys_are_openai_visual_keys():
    openai_visual = {
        k[len('visual.'):]
        for k in make_tiny_clip_state_dict() if k.startswith('visual.')
    }
    assert set(CLIPViT(arch=TINY).state_dict()) == openai_visual
    assert set(CLIPViT(arch=TINY, num_cams=2).state_dict()) == (
        openai_visual | {'cam_embed'})


def test_quick_gelu():

    def activations(model):
        return {type(b.mlp.gelu) for b in model.transformer.resblocks}

    assert activations(CLIPViT(arch=TINY)) == {QuickGELU}
    assert activations(CLIPViT(arch=TINY, force_quick_gelu=False)) == {nn.GELU}
    x = torch.randn(7)
    assert torch.allclose(QuickGELU()(x), x * torch.sigmoid(1.702 * x))


def test_sie_is_added_to_class_token_before_pos_embed():
    model = _tiny_backbone(num_cams=4, sie_coef=0.5, img_size=(224, 224))
    x = torch.randn(3, 3, 224, 224)
    cam_ids = torch.tensor([3, 0, 3])
    captured = {}
    model.ln_pre.register_forward_hook(
        lambda module, args, out: captured.update(inputs=args[0]))
    with torch.no_grad():
        model(x, cam_ids)
    first = captured['inputs']
    expected_cls = (
        model.class_embedding + 0.5 * model.cam_embed[cam_ids] +
        model.positional_embedding[0])
    torch.testing.assert_close(first[:, 0], expected_cls)
    # Patch tokens get no camera embedding.
    with torch.no_grad():
        model(x)
    torch.testing.assert_close(captured['inputs'][:, 1:], first[:, 1:])
    torch.testing.assert_close(captured['inputs'][:, 0],
                               (model.class_embedding +
                                model.positional_embedding[0]).expand(3, -1))
    # cam_embed is initialised trunc_normal(std=0.02) (cut at +-2 in
    # absolute value, as timm's, which the authors use).
    fresh = CLIPViT(arch=TINY, num_cams=500)
    assert abs(fresh.cam_embed.std().item() - 0.02) < 1e-3
    assert abs(fresh.cam_embed.mean().item()) < 1e-3


def test_sie_errors():
    model = CLIPViT(arch=TINY, img_size=(64, 32), num_cams=2)
    x = torch.randn(2, 3, 64, 32)
    # The range is checked against the data where it enters (no host sync
    # in the forward); on the CPU an unknown camera is still an error.
    with pytest.raises(IndexError):
        model(x, torch.tensor([0, 2]))
    with pytest.raises(ValueError, match='one per image'):
        model(x, torch.tensor([0]))
    with pytest.raises(TypeError, match='integers'):
        model(x, torch.tensor([0., 1.]))
    no_sie = CLIPViT(arch=TINY, img_size=(64, 32))
    with pytest.raises(ValueError, match='num_cams=0'):
        no_sie(x, torch.tensor([0, 1]))
    with pytest.raises(ValueError, match='does not match'):
        model(torch.randn(2, 3, 48, 32))


def test_overlapping_stride_grid():
    model = CLIPViT(arch=TINY, img_size=(64, 40), stride_size=(12, 8))
    # (64 - 16) // 12 + 1 = 5 rows, (40 - 16) // 8 + 1 = 4 columns.
    assert model.patch_grid == (5, 4)
    assert model.conv1.stride == (12, 8)
    x = torch.randn(2, 3, 64, 40)
    with torch.no_grad():
        tokens, _ = model(x)
    assert tokens.shape == (2, 1 + 5 * 4, 64)
    # Token (r, c) sees the pixels [12 r, 12 r + 16) x [8 c, 8 c + 16).
    patch = x[:, :, 12 * 2:12 * 2 + 16, 8 * 3:8 * 3 + 16]
    embedded = torch.einsum('nchw,dchw->nd', patch, model.conv1.weight)
    with torch.no_grad():
        conv = model.conv1(x).flatten(2).transpose(1, 2)
    torch.testing.assert_close(conv[:, 2 * 4 + 3], embedded)


def _layer_norm(x, weight, bias, eps=1e-5):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean)**2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * weight + bias


def _reference_clip_vit(sd, x, heads, patch):
    """CLIP's ViT (Radford et al. 2021, Dosovitskiy et al. 2021) written
    from the equations, with ln_post and the projection on every token."""
    n = x.shape[0]
    patches = x.unfold(2, patch, patch).unfold(3, patch, patch)
    # [N, 3, gh, gw, p, p] -> [N, gh * gw, 3 * p * p] in row-major order.
    patches = patches.permute(0, 2, 3, 1, 4,
                              5).reshape(n, -1, 3 * patch * patch)
    z = patches @ sd['conv1.weight'].reshape(sd['conv1.weight'].shape[0],
                                             -1).t()
    cls = sd['class_embedding'].expand(n, 1, -1)
    z = torch.cat([cls, z], dim=1) + sd['positional_embedding']
    z = _layer_norm(z, sd['ln_pre.weight'], sd['ln_pre.bias'])
    width = z.shape[-1]
    head_dim = width // heads
    layers = len([k for k in sd if k.endswith('attn.in_proj_weight')])
    for i in range(layers):
        p = f'transformer.resblocks.{i}.'
        h = _layer_norm(z, sd[p + 'ln_1.weight'], sd[p + 'ln_1.bias'])
        qkv = h @ sd[p + 'attn.in_proj_weight'].t() + sd[p +
                                                         'attn.in_proj_bias']
        q, k, v = qkv.split(width, dim=-1)
        outs = []
        for j in range(heads):
            cols = slice(j * head_dim, (j + 1) * head_dim)
            scores = q[..., cols] @ k[..., cols].transpose(1, 2)
            weights = torch.softmax(scores / math.sqrt(head_dim), dim=-1)
            outs.append(weights @ v[..., cols])
        attn = torch.cat(outs, dim=-1)
        z = z + attn @ sd[p + 'attn.out_proj.weight'].t() + sd[
            p + 'attn.out_proj.bias']
        h = _layer_norm(z, sd[p + 'ln_2.weight'], sd[p + 'ln_2.bias'])
        h = h @ sd[p + 'mlp.c_fc.weight'].t() + sd[p + 'mlp.c_fc.bias']
        h = h * torch.sigmoid(1.702 * h)
        z = z + h @ sd[p + 'mlp.c_proj.weight'].t() + sd[p + 'mlp.c_proj.bias']
    z = _layer_norm(z, sd['ln_post.weight'], sd['ln_post.bias'])
    return z, z @ sd['proj']


def test_forward_matches_equations():
    model = _tiny_backbone(img_size=(224, 224))
    sd = {k: v.detach() for k, v in model.state_dict().items()}
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        tokens, proj = model(x)
        model.train()
        tokens_train, _ = model(x)
    ref_tokens, ref_proj = _reference_clip_vit(sd, x, heads=2, patch=16)
    torch.testing.assert_close(tokens, ref_tokens, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(proj, ref_proj, rtol=1e-4, atol=1e-4)
    # The training path (no fused inference kernels) gives the same.
    torch.testing.assert_close(tokens_train, ref_tokens, rtol=1e-4, atol=1e-4)


def test_init_weights(tmp_path):
    path = save_tiny_clip(str(tmp_path / 'tiny.pt'), fmt='openai_jit')
    model = CLIPViT(arch=TINY, img_size=(224, 224), pretrained=path)
    model.init_weights()
    expected = make_tiny_clip_state_dict()['visual.ln_post.bias']
    torch.testing.assert_close(model.ln_post.bias.detach(), expected)
    # A second call (the Runner may call it again) does not reload or
    # re-initialise.
    with torch.no_grad():
        model.ln_post.bias.zero_()
    model.init_weights()
    assert model.ln_post.bias.abs().max() == 0

    random_model = CLIPViT(arch=TINY, img_size=(64, 32), pretrained=None)
    logger = MMLogger.get_instance('test_clip_vit_random_init')
    handler = _Collect()
    logger.addHandler(handler)
    try:
        random_model.init_weights()
    finally:
        logger.removeHandler(handler)
    assert any('RANDOM initialisation' in m for m in handler.messages)


class _Collect(logging.Handler):
    """Keeps the log messages."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())
