# Copyright (c) mmtfclip contributors. All rights reserved.
"""The CLIP-ReID converter on a state dict in the authors' layout, made
from a tiny model of ours with their key names (no file of theirs)."""
import importlib.util
import os.path as osp

import open_clip
import pytest
import torch

from mmtfclip.registry import MODELS
from mmtfclip.utils import register_all_modules

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
register_all_modules()


def _converter():
    path = osp.join(ROOT, 'tools', 'model_converters',
                    'clipreid_official_to_mmtfclip.py')
    spec = importlib.util.spec_from_file_location('clipreid_converter', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _model():
    return MODELS.build(
        dict(
            type='CLIPReID',
            backbone=dict(
                type='CLIPViT',
                arch=dict(
                    width=64, layers=2, heads=2, patch_size=16, output_dim=32),
                img_size=(64, 32),
                num_cams=3),
            text_encoder=dict(
                type='CLIPTextEncoder',
                arch=dict(
                    width=32,
                    layers=1,
                    heads=2,
                    context_length=77,
                    vocab_size=49408,
                    output_dim=32)),
            head=dict(
                type='CLIPReIDHead',
                num_classes=5,
                in_channels=64,
                proj_channels=32)))


def _theirs(ours):
    """Our state dict under the authors' names (the converter's inverse)."""
    back = {
        'backbone.cam_embed': 'cv_embed',
        'head.cls_classifier.weight': 'classifier.weight',
        'head.proj_classifier.weight': 'classifier_proj.weight',
    }
    theirs = {}
    for key, value in ours.items():
        if key in ('head.clip_memory', 'text_encoder.token_embedding.weight'):
            continue
        if key in back:
            new = back[key]
        elif key.startswith('backbone.'):
            new = 'image_encoder.' + key[len('backbone.'):]
        elif key.startswith('head.cls_bn.'):
            new = 'bottleneck.' + key[len('head.cls_bn.'):]
        elif key.startswith('head.proj_bn.'):
            new = 'bottleneck_proj.' + key[len('head.proj_bn.'):]
        else:
            new = key
        theirs['module.' + new] = value
    words = ours['text_encoder.token_embedding.weight'][open_clip.tokenize(
        ['A photo of a X X X X person.'])]
    theirs['module.prompt_learner.token_prefix'] = words[:, :5]
    theirs['module.prompt_learner.token_suffix'] = words[:, 9:]
    return theirs


def test_round_trip_and_refusals():
    converter = _converter()
    model = _model()
    ours = model.state_dict()
    theirs = _theirs(ours)
    token_embedding = ours['text_encoder.token_embedding.weight']
    converted = converter.convert(theirs, token_embedding)
    expected = {k: v for k, v in ours.items() if k != 'head.clip_memory'}
    assert set(converted) == set(expected)
    for key, value in expected.items():
        assert torch.equal(converted[key], value), key
    fresh = _model()
    missing, unexpected = fresh.load_state_dict(converted, strict=False)
    assert missing == ['head.clip_memory'] and not unexpected

    # Another CLIP file than the one they trained from.
    with pytest.raises(converter.LayoutError, match='token_prefix'):
        converter.convert(theirs, torch.randn_like(token_embedding))
    bad = dict(theirs, **{'module.SSP.alpha': torch.zeros(1)})
    with pytest.raises(converter.LayoutError, match='SSP.alpha'):
        converter.convert(bad, token_embedding)
    del bad['module.SSP.alpha'], bad['module.classifier.weight']
    with pytest.raises(converter.LayoutError, match='classifier.weight'):
        converter.convert(bad, token_embedding)
