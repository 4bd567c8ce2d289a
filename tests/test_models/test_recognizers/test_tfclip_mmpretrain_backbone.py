# Copyright (c) mmtfclip contributors. All rights reserved.
"""The one-line backbone swap: mmpretrain's ViT with converted CLIP
weights gives the same model as CLIPViT."""
import importlib.util
import os.path as osp

import pytest
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample

from mmtfclip.registry import MODELS
from mmtfclip.testing import (make_tiny_clip_state_dict, save_tiny_clip,
                              tiny_clip_arch)

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
SWAP_CFG = osp.join(
    REPO, 'configs', 'tfclip',
    'tfclip_vit-b16-mmpretrain-clip-openai-pre_1xb16-t8-80e_mars.py')
T, H, W = 4, 64, 32


def _tiny(cfg: Config) -> Config:
    cfg.model.neck.update(embed_dims=64, num_heads=2, num_frames=T)
    cfg.model.head.update(num_classes=4, in_channels=64, proj_channels=32)
    cfg.model.head.ssp.num_heads = 2
    return cfg


def swap_cfg() -> Config:
    cfg = _tiny(Config.fromfile(SWAP_CFG))
    cfg.model.backbone.encoder.update(
        arch=dict(
            embed_dims=64, num_layers=2, num_heads=2,
            feedforward_channels=256),
        img_size=(H, W))
    cfg.model.backbone.update(in_channels=64, out_channels=32)
    cfg.model.init_cfg = None
    return cfg


def clip_vit_cfg() -> Config:
    cfg = _tiny(Config.fromfile(osp.join(REPO, 'configs', 'tfclip_mars.py')))
    cfg.model.backbone.update(
        arch=tiny_clip_arch(), img_size=(H, W), num_cams=0, pretrained=None)
    return cfg


def _samples(labels):
    out = []
    for label in labels:
        sample = DataSample().set_gt_label(label)
        sample.set_field(torch.tensor(1), 'camid', field_type='data')
        out.append(sample)
    return out


def _converter():
    spec = importlib.util.spec_from_file_location(
        'clip_to_mmpretrain',
        osp.join(REPO, 'tools', 'model_converters', 'clip_to_mmpretrain.py'))
    converter = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(converter)
    return converter


def test_swapped_backbone_equals_clip_vit(tmp_path):
    converter = _converter()
    clip_sd = make_tiny_clip_state_dict()

    swapped = MODELS.build(swap_cfg().model)
    assert type(swapped.backbone.encoder).__module__.startswith('mmpretrain.')
    assert not swapped.use_camera_ids
    missing, unexpected = swapped.load_state_dict(
        converter.convert(clip_sd), strict=False)
    assert not unexpected
    assert all(k.startswith(('neck.', 'head.')) for k in missing)

    reference = MODELS.build(clip_vit_cfg().model)
    reference.backbone.load_clip_weights(
        save_tiny_clip(
            str(tmp_path / 'clip.pt'),
            fmt='openai_state_dict',
            state_dict=clip_sd))
    # Same neck and head weights in both.
    rest = {
        k: v
        for k, v in swapped.state_dict().items()
        if k.startswith(('neck.', 'head.'))
    }
    reference.load_state_dict(rest, strict=False)

    memory = torch.randn(4, 32)
    swapped.head.set_memory(memory)
    reference.head.set_memory(memory)
    x = swapped.data_preprocessor(
        dict(inputs=[
            torch.randint(0, 256, (T, 3, H, W), dtype=torch.uint8)
            for _ in range(4)
        ]))['inputs']
    labels = _samples([0, 0, 3, 3])
    for model in (swapped, reference):
        model.train()
        for m in model.modules():
            if isinstance(m, torch.nn.Dropout):
                m.p = 0.0
    loss_a = swapped.loss(x, labels)
    loss_b = reference.loss(x, labels)
    for key in ('loss_id', 'loss_triplet', 'loss_i2t', 'loss_frame'):
        torch.testing.assert_close(
            loss_a[key], loss_b[key], rtol=1e-4, atol=1e-4)
    swapped.eval()
    reference.eval()
    with torch.no_grad():
        torch.testing.assert_close(
            swapped(x, labels, mode='tensor'),
            reference(x, labels, mode='tensor'),
            rtol=1e-4,
            atol=1e-4)
        torch.testing.assert_close(
            swapped.extract_clip_feat(x),
            reference.extract_clip_feat(x),
            rtol=1e-4,
            atol=1e-4)
    out = swapped.test_step(
        dict(
            inputs=[torch.randint(0, 256, (2, T, 3, H, W), dtype=torch.uint8)],
            data_samples=_samples([5])))
    assert out[0].pred_feature.shape == (64 + 32 + 64, )


def test_swapped_backbone_refuses_cameras():
    cfg = swap_cfg()
    cfg.model.use_camera_ids = True
    with pytest.raises(ValueError, match='no camera embedding'):
        MODELS.build(cfg.model)
    cfg = swap_cfg()
    cfg.model.backbone.num_cams = 6
    with pytest.raises(TypeError, match='num_cams is set but the backbone'):
        MODELS.build(cfg.model)


def test_pretrained_init_cfg_loads_strictly(tmp_path):
    """init_cfg=Pretrained loads the converted file into the backbone and
    stops on a file with the wrong keys or NaN weights (mmengine's own
    Pretrained would warn and train from random weights)."""
    clip_sd = make_tiny_clip_state_dict()
    good = str(tmp_path / 'vit_mmpretrain.pth')
    _converter().main(
        [save_tiny_clip(str(tmp_path / 'clip.pt'), state_dict=clip_sd), good])
    cfg = swap_cfg()
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=good)
    model = MODELS.build(cfg.model)
    model.init_weights()
    expected = _converter().convert(clip_sd)
    assert torch.equal(model.backbone.proj.weight,
                       expected['backbone.proj.weight'])
    assert torch.equal(
        model.backbone.encoder.layers[1].ffn.layers[1].weight,
        expected['backbone.encoder.layers.1.ffn.layers.1.weight'])

    # OpenAI's file itself, not converted: its keys are not the model's.
    raw = str(tmp_path / 'raw.pth')
    torch.save(clip_sd, raw)
    # Converted, but for CLIPViT's key names (backbone.conv1.weight ...).
    clip_vit_names = str(tmp_path / 'clip_vit_names.pth')
    torch.save(
        {
            'state_dict': {
                f'backbone.{k[7:]}': v
                for k, v in clip_sd.items() if k.startswith('visual.')
            }
        }, clip_vit_names)
    # Right keys, one part incomplete.
    partial = str(tmp_path / 'partial.pth')
    torch.save(
        {
            k: v
            for k, v in expected.items() if k != 'backbone.encoder.ln1.weight'
        }, partial)
    for path, message in ((
            raw, "does not have \\(50\\): \\['visual.class_embedding'"),
                          (clip_vit_names, 'keys missing from the file'),
                          (partial, "missing from the file \\(1\\): "
                           "\\['backbone.encoder.ln1.weight'\\]")):
        cfg.model.init_cfg = dict(type='Pretrained', checkpoint=path)
        with pytest.raises(RuntimeError, match=message):
            MODELS.build(cfg.model).init_weights()

    nan = str(tmp_path / 'nan.pth')
    broken = dict(expected)
    broken['backbone.encoder.cls_token'] = torch.full_like(
        expected['backbone.encoder.cls_token'], float('nan'))
    torch.save({'state_dict': broken}, nan)
    cfg.model.init_cfg = dict(type='Pretrained', checkpoint=nan)
    with pytest.raises(RuntimeError, match='nan.pth holds NaN .*cls_token'):
        MODELS.build(cfg.model).init_weights()
