# Copyright (c) mmtfclip contributors. All rights reserved.
"""mmpretrain's ViT with converted CLIP weights equals CLIPViT."""
import importlib.util
import os.path as osp
import sys

import pytest
import torch
import torch.nn as nn

from mmtfclip.models.backbones import CLIPViT
from mmtfclip.registry import MODELS
from mmtfclip.testing import (make_tiny_clip_state_dict, save_tiny_clip,
                              tiny_clip_arch)

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
CONVERTER = osp.join(REPO, 'tools', 'model_converters',
                     'clip_to_mmpretrain.py')


@pytest.fixture(scope='module')
def converter():
    spec = importlib.util.spec_from_file_location('clip_to_mmpretrain',
                                                  CONVERTER)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _mmpretrain_vit(img_size, stride):
    """The config a user swaps in, with a tiny custom arch."""
    return MODELS.build(
        dict(
            type='ProjectedBackbone',
            in_channels=64,
            out_channels=32,
            encoder=_mmpretrain_vit_cfg(img_size, stride)))


def _mmpretrain_vit_cfg(img_size, stride):
    return dict(
        type='mmpretrain.VisionTransformer',
        _scope_='mmpretrain',
        arch=dict(
            embed_dims=64, num_layers=2, num_heads=2,
            feedforward_channels=256),
        img_size=img_size,
        patch_size=16,
        # mmpretrain pads the image to fit whole strides unless told
        # not to; CLIP (and CLIPViT) do not pad.
        patch_cfg=dict(stride=stride, padding=0),
        pre_norm=True,
        final_norm=True,
        norm_cfg=dict(type='LN', eps=1e-5),
        layer_cfgs=dict(act_cfg=dict(type='QuickGELU')),
        interpolate_mode='bilinear',
        out_type='raw')


@pytest.mark.parametrize('img_size,stride', [((256, 128), 16), ((64, 40), 12)])
def test_converted_mmpretrain_vit_equals_clip_vit(converter, tmp_path,
                                                  img_size, stride):
    vit = _mmpretrain_vit(img_size, stride)
    assert type(vit.encoder).__module__.startswith('mmpretrain.')
    # What a recognizer using it holds: the backbone with CLIP's projection.
    holder = nn.Module()
    holder.backbone = vit
    converted = converter.convert(make_tiny_clip_state_dict())
    # mmpretrain resizes the 14 x 14 positional embedding while loading.
    holder.load_state_dict(converted, strict=True)

    path = save_tiny_clip(str(tmp_path / 'tiny.pt'), fmt='openai_jit')
    clip_vit = CLIPViT(
        arch=tiny_clip_arch(), img_size=img_size, stride_size=stride)
    clip_vit.load_clip_weights(path)
    holder.eval()
    clip_vit.eval()
    x = torch.randn(2, 3, *img_size)
    with torch.no_grad():
        tokens, proj = vit(x)
        expected_tokens, expected_proj = clip_vit(x)
    assert tokens.shape == expected_tokens.shape
    torch.testing.assert_close(tokens, expected_tokens, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(proj, expected_proj, rtol=1e-5, atol=1e-5)


def test_projected_backbone_refuses_pooled_outputs():
    cfg = _mmpretrain_vit_cfg((64, 32), 16)
    cfg['out_type'] = 'cls_token'
    with pytest.raises(ValueError, match="out_type='raw'"):
        MODELS.build(
            dict(
                type='ProjectedBackbone',
                in_channels=64,
                out_channels=32,
                encoder=cfg))
    with pytest.raises(ValueError, match='in_channels=48 but the encoder'):
        MODELS.build(
            dict(
                type='ProjectedBackbone',
                in_channels=48,
                out_channels=32,
                encoder=_mmpretrain_vit_cfg((64, 32), 16)))


def test_convert_key_map_and_errors(converter):
    sd = make_tiny_clip_state_dict()
    converted = converter.convert(sd)
    assert torch.equal(converted['backbone.proj.weight'],
                       sd['visual.proj'].t())
    assert converted['backbone.encoder.cls_token'].shape == (1, 1, 64)
    assert converted['backbone.encoder.pos_embed'].shape == (1, 197, 64)
    assert torch.equal(
        converted['backbone.encoder.layers.1.ffn.layers.0.0.weight'],
        sd['visual.transformer.resblocks.1.mlp.c_fc.weight'])
    assert torch.equal(converted['backbone.encoder.ln1.bias'],
                       sd['visual.ln_post.bias'])
    # The text tower is left out.
    assert not any('token_embedding' in k for k in converted)
    # A visual-only state dict works too.
    visual_only = {
        k[len('visual.'):]: v
        for k, v in sd.items() if k.startswith('visual.')
    }
    assert list(converter.convert(visual_only)) == list(converted)
    sd['visual.attnpool.positional_embedding'] = torch.zeros(1)
    with pytest.raises(KeyError, match='attnpool'):
        converter.convert(sd)


def test_converter_cli(converter, tmp_path, monkeypatch):
    src = save_tiny_clip(str(tmp_path / 'tiny.pt'), fmt='openai_jit')
    dst = str(tmp_path / 'out' / 'tiny_mmpretrain.pth')
    monkeypatch.setattr(sys, 'argv', ['clip_to_mmpretrain.py', src, dst])
    converter.main()
    saved = torch.load(dst, weights_only=True)
    expected = converter.convert(make_tiny_clip_state_dict())
    assert list(saved['state_dict']) == list(expected)
    for key, value in expected.items():
        assert torch.equal(saved['state_dict'][key], value), key
