# Copyright (c) mmtfclip contributors. All rights reserved.
import torch
import torch.nn as nn

from mmtfclip.registry import MODELS


@MODELS.register_module()
class SupConLoss(nn.Module):
    """Supervised contrastive loss between two sets of features.

    CLIP-ReID's stage-1 loss (Li et al., AAAI 2023, Eqs. 3-5): each anchor
    is scored against every feature of the other set (dot products divided
    by ``temperature``); the loss is minus the mean log-softmax probability
    of the entries with the anchor's label, averaged over anchors. The
    image-to-text loss takes the images as anchors, the text-to-image loss
    the texts. The features are used as they are (CLIP-ReID does not
    normalise them).

    Args:
        temperature (float): Defaults to 1.0 (CLIP-ReID's).
        loss_weight (float): Defaults to 1.0.
    """

    def __init__(self,
                 temperature: float = 1.0,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.temperature = temperature
        self.loss_weight = loss_weight

    def forward(self, anchors: torch.Tensor, others: torch.Tensor,
                anchor_labels: torch.Tensor,
                other_labels: torch.Tensor) -> torch.Tensor:
        """Args:
            anchors (Tensor): ``[M, D]``.
            others (Tensor): ``[N, D]``.
            anchor_labels (Tensor): ``[M]``.
            other_labels (Tensor): ``[N]``.

        Returns:
            Tensor: The scalar loss.
        """
        logits = anchors @ others.t() / self.temperature
        log_prob = torch.log_softmax(logits.float(), dim=1)
        positive = (anchor_labels.unsqueeze(1) == other_labels.unsqueeze(0))
        positive = positive.to(log_prob.dtype)
        mean_positive = (positive * log_prob).sum(1) / positive.sum(1)
        return -self.loss_weight * mean_positive.mean()
