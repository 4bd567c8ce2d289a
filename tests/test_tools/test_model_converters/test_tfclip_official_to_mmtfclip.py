# Copyright (c) mmtfclip contributors. All rights reserved.
"""The converter on a state dict in the authors' layout (tiny widths)."""
import importlib.util
import logging
import os.path as osp
from collections import OrderedDict

import pytest
import torch
from mmengine.config import Config

from mmtfclip.apis import init_model
from mmtfclip.registry import MODELS
from mmtfclip.testing import tiny_clip_arch

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
C, D, IDS, CAMS, L = 64, 32, 4, 3, 1 + 4 * 2  # 64x32 input, 16-px patches


@pytest.fixture(scope='module')
def converter():
    spec = importlib.util.spec_from_file_location(
        'tfclip_official_to_mmtfclip',
        osp.join(REPO, 'tools', 'model_converters',
                 'tfclip_official_to_mmtfclip.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def authors_state_dict(vis_layers=2,
                       tmd_layers=1,
                       ssp_layers=2,
                       cams=CAMS) -> OrderedDict:
    """Key names and shapes of the authors' build_transformer state dict
    for a 64-wide CLIP with a 32-d projection, random values."""
    shapes = OrderedDict()
    for name, width in (('classifier2', C), ('classifier_proj', D),
                        ('classifier_proj_temp', C), ('classifier_proj_temp2',
                                                      C)):
        shapes[f'{name}.weight'] = (IDS, width)
    for name, width in (('bottleneck', C), ('bottleneck_proj', D),
                        ('bottleneck_proj_temp', C), ('bottleneck_proj_temp2',
                                                      C)):
        for p in ('weight', 'bias', 'running_mean', 'running_var'):
            shapes[f'{name}.{p}'] = (width, )
        shapes[f'{name}.num_batches_tracked'] = ()
    enc = 'image_encoder.'
    shapes.update({
        enc + 'class_embedding': (C, ),
        enc + 'positional_embedding': (L, C),
        enc + 'proj': (C, D),
        enc + 'conv1.weight': (C, 3, 16, 16),
        enc + 'ln_pre.weight': (C, ),
        enc + 'ln_pre.bias': (C, ),
    })
    for i in range(vis_layers):
        b = f'{enc}transformer.resblocks.{i}.'
        shapes.update({
            b + 'attn.in_proj_weight': (3 * C, C),
            b + 'attn.in_proj_bias': (3 * C, ),
            b + 'attn.out_proj.weight': (C, C),
            b + 'attn.out_proj.bias': (C, ),
            b + 'ln_1.weight': (C, ),
            b + 'ln_1.bias': (C, ),
            b + 'mlp.c_fc.weight': (4 * C, C),
            b + 'mlp.c_fc.bias': (4 * C, ),
            b + 'mlp.c_proj.weight': (C, 4 * C),
            b + 'mlp.c_proj.bias': (C, ),
            b + 'ln_2.weight': (C, ),
            b + 'ln_2.bias': (C, ),
        })
    shapes[enc + 'ln_post.weight'] = (C, )
    shapes[enc + 'ln_post.bias'] = (C, )
    if cams:
        shapes['cv_embed'] = (cams, C)
    shapes['SSP.alpha'] = (D, )
    for p in ('norm', 'memory_proj.0', 'memory_proj.2', 'text_proj.0',
              'out_proj.0'):
        shapes[f'SSP.{p}.weight'] = shapes[f'SSP.{p}.bias'] = (D, )
    for p in ('memory_proj.1', 'text_proj.1', 'out_proj.1'):
        shapes[f'SSP.{p}.weight'] = (D, D)
        shapes[f'SSP.{p}.bias'] = (D, )
    for i in range(ssp_layers):
        b = f'SSP.decoder.{i}.'
        for attn in ('self_attn', 'cross_attn'):
            for p in ('q_proj', 'k_proj', 'v_proj', 'proj'):
                shapes[f'{b}{attn}.{p}.weight'] = (D, D)
            shapes[f'{b}{attn}.proj.bias'] = (D, )
        for n in (1, 2, 3):
            shapes[f'{b}norm{n}.weight'] = shapes[f'{b}norm{n}.bias'] = (D, )
        shapes[b + 'mlp.0.weight'] = (4 * D, D)
        shapes[b + 'mlp.0.bias'] = (4 * D, )
        shapes[b + 'mlp.3.weight'] = (D, 4 * D)
        shapes[b + 'mlp.3.bias'] = (D, )
    for i in range(tmd_layers):
        b = f'TMD.resblocks.{i}.'
        shapes.update({
            b + 'message_fc.weight': (C, C),
            b + 'message_fc.bias': (C, ),
            b + 'message_ln.weight': (C, ),
            b + 'message_ln.bias': (C, ),
        })
        for attn in ('message_attn', 'attn'):
            shapes.update({
                f'{b}{attn}.in_proj_weight': (3 * C, C),
                f'{b}{attn}.in_proj_bias': (3 * C, ),
                f'{b}{attn}.out_proj.weight': (C, C),
                f'{b}{attn}.out_proj.bias': (C, ),
            })
        for n in (1, 2):
            shapes[f'{b}ln_{n}.weight'] = shapes[f'{b}ln_{n}.bias'] = (C, )
        shapes.update({
            b + 'mlp.c_fc.weight': (4 * C, C),
            b + 'mlp.c_fc.bias': (4 * C, ),
            b + 'mlp.c_proj.weight': (C, 4 * C),
            b + 'mlp.c_proj.bias': (C, ),
        })
    gen = torch.Generator().manual_seed(0)
    return OrderedDict((k, torch.randint(0, 9, s, generator=gen) if k.
                        endswith('tracked') else torch.randn(s, generator=gen))
                       for k, s in shapes.items())


def tiny_cfg() -> Config:
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'tfclip_mars.py'))
    cfg.model.backbone.update(
        arch=tiny_clip_arch(), img_size=(64, 32), num_cams=CAMS)
    cfg.model.neck.update(embed_dims=C, num_heads=2, num_frames=4)
    cfg.model.head.update(num_classes=IDS, in_channels=C, proj_channels=D)
    cfg.model.head.ssp.num_heads = 2
    return cfg


def test_convert_maps_every_weight(converter):
    sd = authors_state_dict()
    converted = converter.convert(
        OrderedDict(('module.' + k, v) for k, v in sd.items()))
    model = MODELS.build(tiny_cfg().model)
    missing, unexpected = model.load_state_dict(converted, strict=False)
    assert missing == ['head.clip_memory'] and unexpected == []
    assert len(converted) == len(sd) - len(converter.UNUSED_KEYS) - 4 * 2
    own = model.state_dict()
    # Spot checks of the renames that matter.
    pairs = {
        'backbone.cam_embed': 'cv_embed',
        'backbone.transformer.resblocks.1.mlp.c_fc.weight':
        'image_encoder.transformer.resblocks.1.mlp.c_fc.weight',
        'neck.layers.0.message_norm.bias': 'TMD.resblocks.0.message_ln.bias',
        'neck.layers.0.mlp.fc2.weight': 'TMD.resblocks.0.mlp.c_proj.weight',
        'head.ssp.memory_proj.1.weight': 'SSP.text_proj.1.weight',
        'head.ssp.visual_proj.2.bias': 'SSP.memory_proj.2.bias',
        'head.ssp.layers.1.cross_attn.out_proj.bias':
        'SSP.decoder.1.cross_attn.proj.bias',
        'head.ssp.layers.0.mlp.fc2.weight': 'SSP.decoder.0.mlp.3.weight',
        'head.frame_bn.running_var': 'bottleneck_proj_temp.running_var',
        'head.temporal_bn.weight': 'bottleneck_proj_temp2.weight',
        'head.cls_classifier.weight': 'classifier2.weight',
        'head.temporal_classifier.weight': 'classifier_proj_temp.weight',
    }
    for ours, theirs in pairs.items():
        assert torch.equal(own[ours], sd[theirs]), ours
    packed = own['head.ssp.layers.1.self_attn.in_proj_weight']
    for i, p in enumerate('qkv'):
        assert torch.equal(packed[i * D:(i + 1) * D],
                           sd[f'SSP.decoder.1.self_attn.{p}_proj.weight'])


def test_dropped_keys_are_logged(converter, caplog):
    with caplog.at_level(logging.INFO, logger='converter_log'):
        converter.convert(
            authors_state_dict(), logger=logging.getLogger('converter_log'))
    assert 'classifier_proj_temp2.weight' in caplog.text
    assert 'SSP.alpha' in caplog.text


def test_refuses_a_layout_it_cannot_map(converter):
    sd = authors_state_dict()
    # An earlier prompt generator: other key names, one module missing.
    sd['SSP.prompt_generator.0.weight'] = torch.zeros(D)
    del sd['TMD.resblocks.0.message_fc.weight']
    with pytest.raises(converter.LayoutError) as err:
        converter.convert(sd)
    text = str(err.value)
    assert 'unknown keys (1)' in text and 'SSP.prompt_generator.0.weight' in (
        text)
    assert 'missing keys (1)' in text and ('TMD.resblocks.0.message_fc.weight'
                                           in text)
    no_tmd = {
        k: v
        for k, v in authors_state_dict().items() if not k.startswith('TMD')
    }
    with pytest.raises(converter.LayoutError, match=r'TMD\.resblocks\.0\.\*'):
        converter.convert(no_tmd)


def test_cli_and_init_model(converter, tmp_path):
    src = str(tmp_path / 'best_model.pth.tar')
    torch.save(authors_state_dict(cams=0), src)
    memory = torch.randn(IDS, D)
    torch.save(dict(memory=memory), str(tmp_path / 'memory.pth'))
    dst = str(tmp_path / 'out' / 'converted.pth')
    converter.main([
        src, dst, '--memory',
        str(tmp_path / 'memory.pth'), '--num-frames', '4'
    ])
    saved = torch.load(dst, weights_only=True)
    assert saved['meta']['num_frames'] == 4
    cfg = tiny_cfg()
    cfg.model.backbone.num_cams = 0
    model = init_model(cfg, dst)
    assert torch.equal(model.head.clip_memory, memory)
    assert not model.training and model.cfg is not None


def test_refuses_mmtfclip_checkpoints_and_non_finite(converter, tmp_path):
    from mmengine.logging import HistoryBuffer

    from mmtfclip.fileio import UnsafeFileError
    model_sd = MODELS.build(tiny_cfg().model).state_dict()
    # As the Runner writes it: mmengine objects in its meta.
    runner_ckpt = str(tmp_path / 'epoch_1.pth')
    torch.save(
        dict(
            state_dict=model_sd,
            meta=dict(
                message_hub=dict(
                    log_scalars={'train/loss': HistoryBuffer([1.0], [1])}))),
        runner_ckpt)
    # Plain tensors, but our key names (e.g. this converter's own output).
    plain_ckpt = str(tmp_path / 'converted.pth')
    torch.save(dict(state_dict=model_sd, meta=dict(num_frames=4)), plain_ckpt)
    for path in (runner_ckpt, plain_ckpt):
        with pytest.raises(
                converter.LayoutError,
                match='is already an mmtfclip checkpoint'):
            converter.main([path, str(tmp_path / 'out.pth')])
    assert not osp.exists(tmp_path / 'out.pth')

    broken = authors_state_dict(cams=0)
    broken['SSP.out_proj.0.weight'].view(-1)[0] = float('nan')
    src = str(tmp_path / 'nan.pth')
    torch.save(broken, src)
    with pytest.raises(
            UnsafeFileError,
            match='nan.pth holds NaN.*'
            r'SSP.out_proj.0.weight \(1 of'):
        converter.main([src, str(tmp_path / 'out.pth')])
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(UnsafeFileError, match='empty.pth is empty'):
        converter.main([str(empty), str(tmp_path / 'out.pth')])
