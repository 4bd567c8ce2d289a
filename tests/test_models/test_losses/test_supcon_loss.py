# Copyright (c) mmtfclip contributors. All rights reserved.
import math

import torch

from mmtfclip.models.losses import SupConLoss


def test_supcon_loss_equals_its_definition():
    gen = torch.Generator().manual_seed(0)
    anchors = torch.randn(5, 4, generator=gen)
    others = torch.randn(6, 4, generator=gen)
    a_labels = torch.tensor([0, 1, 1, 2, 0])
    o_labels = torch.tensor([1, 0, 2, 1, 0, 2])
    loss = SupConLoss(temperature=0.5)(anchors, others, a_labels, o_labels)
    expected = 0.0
    for i in range(5):
        logits = [float(anchors[i] @ others[j]) / 0.5 for j in range(6)]
        norm = math.log(sum(math.exp(v) for v in logits))
        pos = [
            logits[j] - norm for j in range(6) if o_labels[j] == a_labels[i]
        ]
        expected -= sum(pos) / len(pos) / 5
    assert abs(float(loss) - expected) < 1e-5
    # The anchors' side matters: image-to-text differs from text-to-image.
    reverse = SupConLoss(temperature=0.5)(others, anchors, o_labels, a_labels)
    assert abs(float(reverse) - float(loss)) > 1e-3
