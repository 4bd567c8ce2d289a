# Copyright (c) mmtfclip contributors. All rights reserved.
import copy

import pytest
import torch
import torch.nn as nn
from mmpretrain.structures import DataSample

from mmtfclip.registry import MODELS
from mmtfclip.utils import register_all_modules

register_all_modules()

NUM_IDS, WIDTH, PROJ = 4, 64, 32


def tiny_cfg(**head):
    return dict(
        type='CLIPReID',
        backbone=dict(
            type='CLIPViT',
            arch=dict(
                width=WIDTH, layers=2, heads=2, patch_size=16,
                output_dim=PROJ),
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
                output_dim=PROJ)),
        head=dict(
            type='CLIPReIDHead',
            num_classes=NUM_IDS,
            in_channels=WIDTH,
            proj_channels=PROJ,
            **head))


def samples(labels, cams):
    out = []
    for label, cam in zip(labels, cams):
        sample = DataSample().set_gt_label(label)
        sample.set_field(torch.tensor(cam), 'camid', field_type='data')
        out.append(sample)
    return out


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return MODELS.build(tiny_cfg())


def test_stage1_learns_only_the_prompts(model):
    x = torch.randn(4, 1, 3, 64, 32)
    labels = torch.tensor([0, 0, 1, 3])
    with torch.no_grad():
        feats = model.extract_clip_feat(x)
    assert not model.prompt_learner.cls_ctx.requires_grad
    model.prompt_learner.requires_grad_(True)
    try:
        losses = model.prompt_loss(feats, labels)
        assert set(losses) == {'loss_i2t_prompt', 'loss_t2i_prompt'}
        sum(losses.values()).backward()
    finally:
        model.prompt_learner.requires_grad_(False)
    with_grad = [n for n, p in model.named_parameters() if p.grad is not None]
    assert with_grad == ['prompt_learner.cls_ctx']
    grad = model.prompt_learner.cls_ctx.grad
    assert grad[2].abs().sum() == 0 and grad[3].abs().sum() > 0
    model.prompt_learner.cls_ctx.grad = None


def test_text_memory_and_stage2_losses(model):
    memory = model.build_text_memory()
    with torch.no_grad():
        expected = model.text_features(torch.arange(NUM_IDS))
    torch.testing.assert_close(memory, expected)
    torch.testing.assert_close(model.head.clip_memory, expected)

    x = torch.randn(4, 2, 3, 64, 32)  # 2 frames per clip, averaged
    labels, cams = [0, 0, 1, 1], [0, 1, 2, 0]
    model.train()
    torch.manual_seed(1)
    losses = model(x, samples(labels, cams), mode='loss')
    assert {'loss_id', 'loss_triplet', 'loss_i2t'} <= set(losses)

    # The triplet term on the class token entering the last block.
    plain = copy.deepcopy(model)
    plain.head.penultimate_triplet = False
    without = plain(x, samples(labels, cams), mode='loss')
    truncated = copy.deepcopy(model.backbone)
    truncated.transformer.resblocks = truncated.transformer.resblocks[:-1]
    truncated.ln_post = nn.Identity()
    frames = x.flatten(0, 1)
    tokens, _ = truncated(frames, torch.tensor(cams).repeat_interleave(2))
    penultimate = tokens[:, 0].view(4, 2, -1).mean(1)
    extra = model.head.loss_triplet(penultimate, torch.tensor(labels))
    torch.testing.assert_close(losses['loss_triplet'],
                               without['loss_triplet'] + extra)
    torch.testing.assert_close(losses['loss_i2t'], without['loss_i2t'])
    # Stage 2 never trains the prompts or the text encoder.
    sum(v for k, v in losses.items() if k.startswith('loss')).backward()
    assert model.prompt_learner.cls_ctx.grad is None
    assert all(p.grad is None for p in model.text_encoder.parameters())
    assert model.backbone.conv1.weight.grad is not None

    model.eval()
    with torch.no_grad():
        emb = model(x, samples(labels, cams), mode='tensor')
    assert emb.shape == (4, WIDTH + PROJ)


def test_stage2_without_text_features_says_how_to_get_them():
    model = MODELS.build(tiny_cfg())
    with pytest.raises(RuntimeError, match='PromptLearningHook'):
        model(
            torch.randn(2, 1, 3, 64, 32), samples([0, 1], [0, 1]), mode='loss')


def test_inconsistent_configs_are_refused():
    cfg = tiny_cfg()
    cfg['prompt_learner'] = dict(type='IdentityPromptLearner', num_classes=9)
    with pytest.raises(ValueError, match='prompt_learner.num_classes=9'):
        MODELS.build(cfg)
    cfg = tiny_cfg()
    cfg['text_encoder']['arch']['output_dim'] = 16
    with pytest.raises(ValueError, match='output_dim 16'):
        MODELS.build(cfg)
