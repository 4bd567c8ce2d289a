# Copyright (c) mmtfclip contributors. All rights reserved.
import open_clip
import pytest
import torch
import torch.nn as nn

from mmtfclip.models.utils import IdentityPromptLearner


def test_prompts_put_identity_tokens_in_the_template():
    learner = IdentityPromptLearner(num_classes=5, embed_dims=8)
    embedding = nn.Embedding(49408, 8)
    labels = torch.tensor([3, 0, 3])
    prompts = learner(labels, embedding)
    assert prompts.shape == (3, 77, 8)
    tokens = open_clip.tokenize(['A photo of a X X X X person.'])[0]
    # <start> a photo of a | 4 identity tokens | person . <end> padding
    assert learner.start == 5
    words = embedding(tokens)
    keep = torch.ones(77, dtype=torch.bool)
    keep[5:9] = False
    for i, label in enumerate(labels):
        torch.testing.assert_close(prompts[i, keep], words[keep])
        torch.testing.assert_close(prompts[i, 5:9], learner.cls_ctx[label])
    assert torch.equal(learner.tokenized_prompts[0], tokens)
    # Only the identity tokens are state.
    assert list(learner.state_dict()) == ['cls_ctx']
    prompts.sum().backward()
    assert embedding.weight.grad is None
    assert learner.cls_ctx.grad[[1, 2, 4]].abs().sum() == 0
    assert learner.cls_ctx.grad[3].abs().sum() > 0


def test_template_must_hold_the_placeholders():
    with pytest.raises(ValueError, match='exactly 4 consecutive'):
        IdentityPromptLearner(num_classes=2, template='A photo of a person.')
    with pytest.raises(ValueError, match='exactly 2 consecutive'):
        IdentityPromptLearner(
            num_classes=2, template='A X photo of X X a person.', num_tokens=2)
    learner = IdentityPromptLearner(
        num_classes=2, template='A photo of a X X vehicle.', num_tokens=2)
    assert learner.cls_ctx.shape == (2, 2, 512)
