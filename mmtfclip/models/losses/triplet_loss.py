# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

from mmtfclip.registry import MODELS


def euclidean_distance(x: torch.Tensor) -> torch.Tensor:
    """Pairwise euclidean distances within a batch.

    Computed as ``sqrt(max(|a|^2 + |b|^2 - 2 a.b, 1e-12))``, the form used
    by the ReID baselines TF-CLIP builds on (the clamp keeps the gradient
    of the square root finite on the diagonal).

    Args:
        x (Tensor): Features ``[N, D]``.

    Returns:
        Tensor: ``[N, N]``.
    """
    sq = x.pow(2).sum(dim=1, keepdim=True)
    dist = sq + sq.t() - 2 * x @ x.t()
    return dist.clamp(min=1e-12).sqrt()


@MODELS.register_module()
class TripletLoss(nn.Module):
    """Triplet loss with batch-hard mining (Hermans et al., 2017).

    For each anchor, the farthest sample of its identity (itself included)
    and the closest sample of another identity are mined from the batch
    (euclidean distance); the loss is
    ``mean(max(0, d(a, p) - d(a, n) + margin))``, or with ``margin=None``
    the soft margin ``mean(log(1 + exp(d(a, p) - d(a, n))))``.

    Args:
        margin (float, optional): Margin; None for the soft margin.
            Defaults to 0.3.
        normalize_feature (bool): L2-normalise the features first.
            Defaults to False.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
    """

    def __init__(self,
                 margin: Optional[float] = 0.3,
                 normalize_feature: bool = False,
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.margin = margin
        self.normalize_feature = normalize_feature
        self.loss_weight = loss_weight

    def forward(self, feats: torch.Tensor,
                labels: torch.Tensor) -> torch.Tensor:
        """Compute the loss.

        Args:
            feats (Tensor): Features ``[N, D]``.
            labels (Tensor): Identity labels ``[N]``.

        Returns:
            Tensor: The weighted loss (a scalar).
        """
        if feats.dim() != 2 or labels.shape != (feats.shape[0], ):
            raise ValueError(
                f'TripletLoss expects feats [N, D] and labels [N], got '
                f'{tuple(feats.shape)} and {tuple(labels.shape)}.')
        if self.normalize_feature:
            feats = F.normalize(feats, dim=1, eps=1e-12)
        dist = euclidean_distance(feats)
        same = labels.unsqueeze(0) == labels.unsqueeze(1)
        if not (~same).any(dim=1).all():
            raise ValueError(
                'TripletLoss needs at least two identities in the batch '
                'for every anchor to have a negative; use an identity-'
                'balanced sampler.')
        dist_ap = dist.masked_fill(~same, float('-inf')).amax(dim=1)
        dist_an = dist.masked_fill(same, float('inf')).amin(dim=1)
        if self.margin is None:
            loss = F.softplus(dist_ap - dist_an).mean()
        else:
            loss = F.relu(dist_ap - dist_an + self.margin).mean()
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return (f'margin={self.margin}, '
                f'normalize_feature={self.normalize_feature}, '
                f'loss_weight={self.loss_weight}')
