# Copyright (c) mmtfclip contributors. All rights reserved.
"""k-reciprocal re-ranking (Zhong et al., CVPR 2017).

Same numbers as the standard Python implementation that torchreid and most
ReID code bases ship (the distance-matrix version of the authors' release),
computed without its per-sample Python loops and without its dense
``N x N`` encoding matrices (``N = num_query + num_gallery``): the k-reciprocal
sets are found for all samples at once, and the encodings, which hold a few
dozen non-zeros per row, are kept sparse. Every floating-point operation that
reaches the result is the standard one, in the same dtype and order:

- the input distances are squared in their own dtype, then cast to float32;
- each column is divided by its maximum, in float32;
- ``np.argsort`` of each row gives the neighbour lists (ties broken as the
  standard code breaks them);
- the encoding weights are ``exp(-d)`` over the k-reciprocal set, divided
  by their ``np.sum``, in float32;
- query expansion is ``np.mean`` over the ``k2`` nearest encodings (float32
  sum, divided in float64 and stored as float32, as ``np.mean`` does);
- the Jaccard overlaps are accumulated in float32, one shared feature after
  another in ascending order;
- the result, ``(1 - lambda) * jaccard + lambda * distance``, is float32.

The authors of TF-CLIP (and CLIP-ReID) call a variant that takes features,
uses their squared euclidean distance without squaring it again, and stores
the encodings in float16; it is not the one reproduced here.
"""
from typing import Tuple

import numpy as np

# Rows of an N x N matrix handled at once when filling or sorting it, and
# the number of (query, gallery) overlap terms accumulated at once.
_ROW_CHUNK = 512
_PAIR_CHUNK = 1 << 22


def _check_inputs(q_g_dist, q_q_dist, g_g_dist, k1, k2, lambda_value):
    """Validate the arguments and return the three matrices as arrays."""
    q_g_dist = np.asarray(q_g_dist)
    q_q_dist = np.asarray(q_q_dist)
    g_g_dist = np.asarray(g_g_dist)
    if q_g_dist.ndim != 2 or 0 in q_g_dist.shape:
        raise ValueError('q_g_dist must be a non-empty 2-D [num_query, '
                         f'num_gallery] array, got shape {q_g_dist.shape}')
    num_q, num_g = q_g_dist.shape
    if q_q_dist.shape != (num_q, num_q):
        raise ValueError(f'q_q_dist must have shape ({num_q}, {num_q}) to '
                         f'match q_g_dist, got {q_q_dist.shape}')
    if g_g_dist.shape != (num_g, num_g):
        raise ValueError(f'g_g_dist must have shape ({num_g}, {num_g}) to '
                         f'match q_g_dist, got {g_g_dist.shape}')
    for name, array in (('q_g_dist', q_g_dist), ('q_q_dist', q_q_dist),
                        ('g_g_dist', g_g_dist)):
        if not (np.issubdtype(array.dtype, np.floating)
                or np.issubdtype(array.dtype, np.integer)):
            raise TypeError(f'{name} must hold real numbers, got dtype '
                            f'{array.dtype}')
    for name, value in (('k1', k1), ('k2', k2)):
        if int(value) != value or value < 1:
            raise ValueError(f'{name} must be an integer >= 1, got {value}')
    if not 0.0 <= lambda_value <= 1.0:
        raise ValueError(f'lambda_value must be in [0, 1], got {lambda_value}')
    return q_g_dist, q_q_dist, g_g_dist


def _normalised_distance(q_g_dist: np.ndarray, q_q_dist: np.ndarray,
                         g_g_dist: np.ndarray) -> np.ndarray:
    """Squared distances of all samples, column-normalised and transposed.

    Row ``i`` of the result holds the squared distances from every sample to
    sample ``i`` divided by their maximum: the standard code's matrix after
    its ``np.transpose``, built in place without an extra ``N x N`` copy.
    """
    num_q, num_g = q_g_dist.shape
    num = num_q + num_g
    dtype = np.result_type(q_g_dist, q_q_dist, g_g_dist)
    dist = np.empty((num, num), dtype=np.float32)
    # Top-left corner of each block in the transposed matrix.
    blocks = [(0, 0, q_q_dist.T), (0, num_q, q_g_dist), (num_q, 0, q_g_dist.T),
              (num_q, num_q, g_g_dist.T)]
    for top, left, block in blocks:
        cols = slice(left, left + block.shape[1])
        for start in range(0, block.shape[0], _ROW_CHUNK):
            part = block[start:start + _ROW_CHUNK].astype(dtype, copy=False)
            rows = slice(top + start, top + start + part.shape[0])
            dist[rows, cols] = np.power(part, 2)
    if not np.isfinite(dist).all():
        raise ValueError('the distance matrices hold NaN or infinite values '
                         '(after squaring); re-ranking needs finite distances')
    row_max = dist.max(axis=1)
    if not (row_max > 0).all():
        sample = int(np.flatnonzero(row_max <= 0)[0])
        raise ValueError(
            f'all distances to sample {sample} (queries first, then gallery) '
            'are zero; the column normalisation of re-ranking is undefined')
    dist /= row_max[:, None]
    return dist


def _nearest(dist: np.ndarray, num_cols: int) -> np.ndarray:
    """First ``num_cols`` entries of ``np.argsort`` of each row."""
    ranks = np.empty((dist.shape[0], num_cols), dtype=np.int64)
    for start in range(0, dist.shape[0], _ROW_CHUNK):
        rows = slice(start, start + _ROW_CHUNK)
        ranks[rows] = np.argsort(dist[rows], axis=1)[:, :num_cols]
    return ranks


def _reciprocal(neighbours: np.ndarray) -> np.ndarray:
    """Which of each sample's neighbours list the sample among their own.

    Args:
        neighbours (np.ndarray): ``[N, k]`` nearest neighbours of each sample
            (itself included, usually first).

    Returns:
        np.ndarray: ``[N, k]`` bool, True where ``neighbours[i, p]`` has
        ``i`` among its first ``k`` neighbours.
    """
    num = neighbours.shape[0]
    mask = np.empty(neighbours.shape, dtype=bool)
    for start in range(0, num, _ROW_CHUNK):
        rows = np.arange(start, min(start + _ROW_CHUNK, num))
        mask[rows] = (neighbours[neighbours[rows]] == rows[:, None,
                                                           None]).any(axis=2)
    return mask


def _row_sums(values: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """``np.sum`` of each row of a ragged array, rounding included.

    ``numpy`` sums a contiguous array pairwise, so the rounding depends on
    the length: rows of equal length are laid out side by side and reduced
    by one ``sum(axis=1)``, which rounds each row as ``np.sum`` of that row
    alone does.

    Args:
        values (np.ndarray): The rows' values, concatenated.
        lengths (np.ndarray): Length of each row.

    Returns:
        np.ndarray: One sum per row, in the dtype of ``values``.
    """
    order = np.argsort(lengths, kind='stable')
    sorted_lengths = lengths[order]
    slot = np.empty_like(order)
    slot[order] = np.arange(len(order))
    starts = np.cumsum(lengths) - lengths
    element_row = np.repeat(np.arange(len(lengths)), lengths)
    element_col = np.arange(len(values)) - starts[element_row]
    width = int(sorted_lengths[-1]) if len(lengths) else 0
    table = np.zeros((len(lengths), width), dtype=values.dtype)
    table[slot[element_row], element_col] = values
    sums = np.zeros(len(lengths), dtype=values.dtype)
    group = np.flatnonzero(np.r_[True,
                                 sorted_lengths[1:] != sorted_lengths[:-1]])
    for begin, end in zip(group, np.r_[group[1:], len(lengths)]):
        sums[begin:end] = table[begin:end, :sorted_lengths[begin]].sum(axis=1)
    return sums[slot]


def _ranges(starts: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(s, s + n)`` for each start and length."""
    offsets = np.cumsum(lengths) - lengths
    return (np.arange(int(lengths.sum())) -
            np.repeat(offsets - starts, lengths))


def _encode(dist: np.ndarray, neighbours: np.ndarray, k1: int,
            half: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sparse k-reciprocal encodings ``V`` (one row per sample), as CSR.

    The set of a sample is its k-reciprocal neighbours (``k1``), enlarged by
    the ``k1 / 2``-reciprocal set of each of them that shares more than two
    thirds of its members with the first set. The encoding holds
    ``exp(-d)`` over the set, normalised to sum 1.

    Returns:
        tuple: ``indptr`` ``[N + 1]``, ``indices`` and ``data`` (float32).
    """
    num = dist.shape[0]
    first = neighbours[:, :k1]
    second = neighbours[:, :half]
    first_ok = _reciprocal(first)
    second_ok = _reciprocal(second)
    indices, data, lengths = [], [], []
    for start in range(0, num, _ROW_CHUNK):
        rows = slice(start, min(start + _ROW_CHUNK, num))
        cand, cand_ok = first[rows], first_ok[rows]
        sub, sub_ok = second[cand], second_ok[cand]
        in_first = ((sub[..., None] == cand[:, None, None, :])
                    & cand_ok[:, None, None, :]).any(axis=3)
        shared = (in_first & sub_ok).sum(axis=2)
        size = sub_ok.sum(axis=2)
        # The standard test, `len(shared) > 2 / 3 * len(candidate set)`, in
        # float64 as Python evaluates it.
        accept = cand_ok & (shared > 2. / 3 * size)
        members = np.zeros((cand.shape[0], num), dtype=bool)
        local = np.arange(cand.shape[0])
        members[np.broadcast_to(local[:, None], cand.shape)[cand_ok],
                cand[cand_ok]] = True
        take = accept[:, :, None] & sub_ok
        members[np.broadcast_to(local[:, None, None], sub.shape)[take],
                sub[take]] = True
        row_lengths = members.sum(axis=1)
        weight = np.exp(-dist[rows][members])
        total = _row_sums(weight, row_lengths)
        indices.append(np.nonzero(members)[1])
        data.append(weight / np.repeat(total, row_lengths))
        lengths.append(row_lengths)
    lengths = np.concatenate(lengths)
    indptr = np.concatenate([[0], np.cumsum(lengths)])
    return indptr, np.concatenate(indices), np.concatenate(data)


def _expand(encoding, neighbours: np.ndarray,
            num: int) -> Tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Query expansion: each encoding becomes the mean of its neighbours'.

    Args:
        encoding (tuple): CSR ``(indptr, indices, data)`` of ``V``.
        neighbours (np.ndarray): ``[N, k2]`` rows to average for each row.
        num (int): N.

    Returns:
        tuple: CSR ``(indptr, indices, data)`` of the expanded encodings.
    """
    indptr, indices, data = encoding
    count = np.intp(neighbours.shape[1])
    new_indices, new_data, lengths = [], [], []
    for start in range(0, num, _ROW_CHUNK):
        rows = neighbours[start:start + _ROW_CHUNK]
        flat = rows.ravel()
        sizes = indptr[flat + 1] - indptr[flat]
        entries = _ranges(indptr[flat], sizes)
        target = np.repeat(np.arange(flat.size) // rows.shape[1], sizes)
        total = np.zeros((rows.shape[0], num), dtype=np.float32)
        # Unbuffered, in order: each entry adds its neighbours' values one
        # after the other, as np.mean's float32 sum over the rows does.
        np.add.at(total, (target, indices[entries]), data[entries])
        # np.mean divides its float32 sum by an np.intp count, in float64.
        np.true_divide(total, count, out=total, casting='unsafe')
        row, col = np.nonzero(total)
        new_indices.append(col)
        new_data.append(total[row, col])
        lengths.append(np.bincount(row, minlength=rows.shape[0]))
    lengths = np.concatenate(lengths)
    new_indptr = np.concatenate([[0], np.cumsum(lengths)])
    return new_indptr, np.concatenate(new_indices), np.concatenate(new_data)


def _jaccard(encoding, num_q: int, num: int) -> np.ndarray:
    """Jaccard distance of each query's encoding to each gallery encoding.

    ``1 - s / (2 - s)`` with ``s`` the sum of element-wise minima over the
    features both encodings hold, accumulated in float32 feature by feature
    in ascending order, as the standard inverted-index loop does.
    """
    indptr, indices, data = encoding
    num_g = num - num_q
    owner = np.repeat(np.arange(num), np.diff(indptr))
    gallery = owner >= num_q
    # Inverted index over the gallery rows: for each feature, the rows that
    # hold it, ascending (a stable sort keeps the row order).
    by_feature = np.argsort(indices[gallery], kind='stable')
    inv_rows = owner[gallery][by_feature] - num_q
    inv_data = data[gallery][by_feature]
    inv_count = np.bincount(indices[gallery], minlength=num)
    inv_start = np.cumsum(inv_count) - inv_count

    pairs_per_query = np.bincount(
        owner[:indptr[num_q]],
        weights=inv_count[indices[:indptr[num_q]]],
        minlength=num_q)
    jaccard = np.empty((num_q, num_g), dtype=np.float32)
    start = 0
    while start < num_q:
        # As many queries as keep the overlap terms under _PAIR_CHUNK.
        budget = np.cumsum(pairs_per_query[start:start + _ROW_CHUNK])
        stop = start + max(1, int(np.searchsorted(budget, _PAIR_CHUNK)))
        stop = min(stop, start + _ROW_CHUNK, num_q)
        entries = np.arange(indptr[start], indptr[stop])
        feature = indices[entries]
        sizes = inv_count[feature]
        others = _ranges(inv_start[feature], sizes)
        query = np.repeat(owner[entries] - start, sizes)
        overlap = np.minimum(np.repeat(data[entries], sizes), inv_data[others])
        shared = np.zeros((stop - start, num_g), dtype=np.float32)
        np.add.at(shared, (query, inv_rows[others]), overlap)
        jaccard[start:stop] = 1 - shared / (2. - shared)
        start = stop
    return jaccard


def re_ranking(q_g_dist,
               q_q_dist,
               g_g_dist,
               k1: int = 20,
               k2: int = 6,
               lambda_value: float = 0.3) -> np.ndarray:
    """Re-rank a query-gallery distance matrix with k-reciprocal encoding.

    Zhong et al., "Re-ranking Person Re-identification with k-reciprocal
    Encoding", CVPR 2017. Returns the same numbers as the standard Python
    implementation (the one torchreid ships) on any finite input, including
    its dtype rules: the distances are squared in the input dtype and all
    later arithmetic is float32 (see the module docstring).

    The standard code squares the distances it receives: pass euclidean
    distances to re-rank on squared euclidean ones, as the paper's release
    does (torchreid passes squared distances, which re-ranks on their
    square). :class:`~mmtfclip.evaluation.ReIDMetric` passes euclidean
    distances.

    Memory is one float32 ``N x N`` matrix, ``N = num_query +
    num_gallery`` (0.8 GB for MARS with the queries in the gallery), plus
    sparse encodings; the standard code holds about five such matrices.

    Args:
        q_g_dist (array-like): Query-gallery distances
            ``[num_query, num_gallery]``.
        q_q_dist (array-like): Query-query distances
            ``[num_query, num_query]``.
        g_g_dist (array-like): Gallery-gallery distances
            ``[num_gallery, num_gallery]``.
        k1 (int): Size of the k-reciprocal neighbourhood. Defaults to 20.
        k2 (int): Number of neighbours averaged in query expansion; 1 turns
            the expansion off. Defaults to 6.
        lambda_value (float): Weight of the original distance in the
            result. Defaults to 0.3.

    Returns:
        np.ndarray: float32 re-ranked distances ``[num_query, num_gallery]``.
    """
    q_g_dist, q_q_dist, g_g_dist = _check_inputs(q_g_dist, q_q_dist, g_g_dist,
                                                 k1, k2, lambda_value)
    k1, k2, lambda_value = int(k1), int(k2), float(lambda_value)
    num_q = q_g_dist.shape[0]
    num = num_q + q_g_dist.shape[1]
    # Slices past the end of a row are cut short, as in the standard code.
    width1 = min(k1 + 1, num)
    width_half = min(int(np.around(k1 / 2.)) + 1, num)
    width2 = min(k2, num)

    dist = _normalised_distance(q_g_dist, q_q_dist, g_g_dist)
    neighbours = _nearest(dist, max(width1, width2))
    encoding = _encode(dist, neighbours, width1, width_half)
    original = dist[:num_q, num_q:].copy()
    del dist
    if k2 != 1:
        encoding = _expand(encoding, neighbours[:, :width2], num)
    jaccard = _jaccard(encoding, num_q, num)
    return jaccard * (1 - lambda_value) + original * lambda_value
