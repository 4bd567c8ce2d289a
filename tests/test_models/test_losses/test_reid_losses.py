# Copyright (c) mmtfclip contributors. All rights reserved.
"""Triplet loss with batch-hard mining and label smoothing, by hand."""
import math

import pytest
import torch

from mmtfclip.models.losses import TripletLoss
from mmtfclip.registry import MODELS


def reference_triplet(feats, labels, margin):
    """max(0, max_p d(a, p) - min_n d(a, n) + margin), anchor by anchor."""
    total = 0.0
    n = len(labels)
    for a in range(n):
        pos = [
            torch.linalg.norm(feats[a] - feats[j]).item() for j in range(n)
            if labels[j] == labels[a]
        ]
        neg = [
            torch.linalg.norm(feats[a] - feats[j]).item() for j in range(n)
            if labels[j] != labels[a]
        ]
        total += max(0.0, max(pos) - min(neg) + margin)
    return total / n


def test_triplet_hard_mining_by_hand():
    # 1-D points: identity 0 at 0 and 3, identity 1 at 1 and 10. Anchor 0:
    # hardest positive 3, hardest negative 1 -> 3 - 1 + 0.3 = 2.3.
    feats = torch.tensor([[0.], [3.], [1.], [10.]])
    labels = torch.tensor([0, 0, 1, 1])
    per_anchor = [
        3 - 1 + .3,
        max(0, 3 - 2 + .3),
        max(0, 9 - 1 + .3),
        max(0, 9 - 7 + .3)
    ]
    loss = TripletLoss(margin=0.3)(feats, labels)
    assert loss.item() == pytest.approx(sum(per_anchor) / 4, abs=1e-5)


@pytest.mark.parametrize('margin', [0.3, None])
def test_triplet_random_batch(margin):
    torch.manual_seed(0)
    feats = torch.randn(8, 16)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    loss = MODELS.build(
        dict(type='TripletLoss', margin=margin, loss_weight=2.0))(feats,
                                                                  labels)
    if margin is None:
        dist = torch.cdist(feats, feats)
        same = labels[:, None] == labels[None]
        ap = torch.where(same, dist, -1.).amax(1)
        an = torch.where(same, 1e9, dist).amin(1)
        expected = torch.log1p(torch.exp(ap - an)).mean().item()
    else:
        expected = reference_triplet(feats, labels, margin)
    assert loss.item() == pytest.approx(2 * expected, rel=1e-5)


def test_triplet_gradient_finite_and_errors():
    feats = torch.randn(4, 8, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1])
    TripletLoss()(feats, labels).backward()
    assert torch.isfinite(feats.grad).all()
    with pytest.raises(ValueError, match=r'feats \[N, D\]'):
        TripletLoss()(torch.randn(3, 4), torch.tensor([1, 2]))


def test_label_smoothing_is_the_authors():
    """mmpretrain's LabelSmoothLoss('original') = -sum(q log p), q = (1 - e)
    one-hot + e / K, averaged over the batch."""
    torch.manual_seed(0)
    logits = torch.randn(6, 5)
    labels = torch.tensor([0, 4, 2, 2, 1, 3])
    loss = MODELS.build(
        dict(
            type='mmpretrain.LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original',
            loss_weight=0.25))(logits, labels)
    expected = 0.0
    for row, y in zip(logits, labels):
        log_p = row - math.log(row.exp().sum().item())
        for k in range(5):
            q = 0.9 * (k == int(y)) + 0.1 / 5
            expected -= q * log_p[k].item()
    assert loss.item() == pytest.approx(0.25 * expected / 6, rel=1e-5)
