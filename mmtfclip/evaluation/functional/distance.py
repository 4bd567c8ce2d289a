# Copyright (c) mmtfclip contributors. All rights reserved.
"""Pairwise distances between query and gallery embeddings."""
import torch
import torch.nn.functional as F

DISTANCE_METRICS = ('euclidean', 'cosine')


def compute_distance_matrix(query: torch.Tensor,
                            gallery: torch.Tensor,
                            metric: str = 'euclidean') -> torch.Tensor:
    """Distance of every query embedding to every gallery embedding.

    ``'euclidean'`` is the *squared* euclidean distance
    ``|q|^2 + |g|^2 - 2 q.g`` (the ranking of the euclidean distance, at the
    cost of one matrix product, as the established ReID code computes it),
    clamped at 0 against rounding; take its square root where the distance
    itself is needed. ``'cosine'`` is ``1 - cos(q, g)``, in [0, 2].

    Both are computed in float32 (half-precision embeddings are widened
    first) on the device of the inputs.

    Args:
        query (torch.Tensor): ``[num_query, dim]`` embeddings.
        gallery (torch.Tensor): ``[num_gallery, dim]`` embeddings.
        metric (str): ``'euclidean'`` or ``'cosine'``.
            Defaults to ``'euclidean'``.

    Returns:
        torch.Tensor: float32 ``[num_query, num_gallery]`` distances.
    """
    if metric not in DISTANCE_METRICS:
        raise ValueError(f'Unknown distance metric {metric!r}; expected one '
                         f'of {DISTANCE_METRICS}')
    query = torch.as_tensor(query)
    gallery = torch.as_tensor(gallery)
    if query.dim() != 2 or gallery.dim() != 2:
        raise ValueError('query and gallery must be 2-D [num, dim] tensors, '
                         f'got shapes {tuple(query.shape)} and '
                         f'{tuple(gallery.shape)}')
    if query.shape[1] != gallery.shape[1]:
        raise ValueError(f'query and gallery embeddings differ in size: '
                         f'{query.shape[1]} vs {gallery.shape[1]}')
    query = query.float()
    gallery = gallery.to(device=query.device, dtype=torch.float32)
    if metric == 'cosine':
        return 1 - F.normalize(query, dim=1) @ F.normalize(gallery, dim=1).t()
    dist = torch.addmm(
        query.pow(2).sum(dim=1, keepdim=True) +
        gallery.pow(2).sum(dim=1)[None, :],
        query,
        gallery.t(),
        beta=1,
        alpha=-2)
    return dist.clamp_(min=0)
