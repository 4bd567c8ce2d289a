# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Optional, Tuple

import torch
import torch.distributed as dist
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
    return pairwise_euclidean_distance(x, x)


def pairwise_euclidean_distance(x: torch.Tensor,
                                y: torch.Tensor) -> torch.Tensor:
    """Euclidean distances between two sets, in the form of
    :func:`euclidean_distance`.

    Args:
        x (Tensor): Features ``[M, D]``.
        y (Tensor): Features ``[N, D]``.

    Returns:
        Tensor: ``[M, N]``.
    """
    dist = (
        x.pow(2).sum(dim=1, keepdim=True) + y.pow(2).sum(dim=1).unsqueeze(0) -
        2 * x @ y.t())
    return dist.clamp(min=1e-12).sqrt()


class _AllGatherWithGrad(torch.autograd.Function):
    """All-gather whose backward returns each rank the gradient of its own
    rows summed over all ranks.

    ``torch.distributed.nn.functional.all_gather`` emulates its backward
    with all-to-all outside NCCL, which gloo lacks; an all-reduce of the
    full gradient followed by the local slice works on every backend.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.rank = dist.get_rank()
        ctx.rows = x.shape[0]
        parts = [torch.empty_like(x) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, x.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        dist.all_reduce(grad)
        start = ctx.rank * ctx.rows
        return grad[start:start + ctx.rows]


def _gather_batch(feats: torch.Tensor,
                  labels: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
    """All ranks' features (differentiable) and labels, in rank order."""
    world_size = dist.get_world_size()
    sizes = [torch.zeros(1, dtype=torch.long) for _ in range(world_size)]
    dist.all_gather(sizes, torch.tensor([feats.shape[0]]).to(feats.device))
    sizes = [int(n) for n in sizes]
    if len(set(sizes)) != 1:
        raise ValueError(
            f'TripletLoss(gather=True) needs the same batch size on every '
            f'rank, got {sizes}; use IdentityBalancedSampler.')
    all_labels = [torch.empty_like(labels) for _ in range(world_size)]
    dist.all_gather(all_labels, labels.contiguous())
    return _AllGatherWithGrad.apply(feats), torch.cat(all_labels)


@MODELS.register_module()
class TripletLoss(nn.Module):
    """Triplet loss with batch-hard mining (Hermans et al., 2017).

    For each anchor, the farthest sample of its identity (itself included)
    and the closest sample of another identity are mined from the batch
    (euclidean distance); the loss is
    ``mean(max(0, d(a, p) - d(a, n) + margin))``, or with ``margin=None``
    the soft margin ``mean(log(1 + exp(d(a, p) - d(a, n))))``.

    With ``gather=True`` in a distributed run the positives and negatives
    are mined among the features of all ranks (gathered with their
    gradient) while the anchors are the local features: a rank's batch then
    needs no identity of its own to pair with, and with DDP's gradient
    averaging the update equals that of one process computing the loss on
    the global batch. Without an initialised process group (or with one
    rank) it is the plain loss.

    Args:
        margin (float, optional): Margin; None for the soft margin.
            Defaults to 0.3.
        normalize_feature (bool): L2-normalise the features first.
            Defaults to False.
        loss_weight (float): Weight of the loss. Defaults to 1.0.
        gather (bool): Mine over the batches of all ranks. Defaults to
            False.
    """

    def __init__(self,
                 margin: Optional[float] = 0.3,
                 normalize_feature: bool = False,
                 loss_weight: float = 1.0,
                 gather: bool = False) -> None:
        super().__init__()
        self.margin = margin
        self.normalize_feature = normalize_feature
        self.loss_weight = loss_weight
        self.gather = gather

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
        if (self.gather and dist.is_available() and dist.is_initialized()
                and dist.get_world_size() > 1):
            others, other_labels = _gather_batch(feats, labels)
            distmat = pairwise_euclidean_distance(feats, others)
        else:
            distmat = euclidean_distance(feats)
            other_labels = labels
        # Every anchor needs a negative: the identity-balanced sampler puts
        # at least two identities in each batch (checked when it is built).
        same = labels.unsqueeze(1) == other_labels.unsqueeze(0)
        dist_ap = distmat.masked_fill(~same, float('-inf')).amax(dim=1)
        dist_an = distmat.masked_fill(same, float('inf')).amin(dim=1)
        if self.margin is None:
            loss = F.softplus(dist_ap - dist_an).mean()
        else:
            loss = F.relu(dist_ap - dist_an + self.margin).mean()
        return self.loss_weight * loss

    def extra_repr(self) -> str:
        return (f'margin={self.margin}, '
                f'normalize_feature={self.normalize_feature}, '
                f'loss_weight={self.loss_weight}, gather={self.gather}')
