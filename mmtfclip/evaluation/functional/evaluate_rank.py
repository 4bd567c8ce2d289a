# Copyright (c) mmtfclip contributors. All rights reserved.
"""CMC and mAP of a query-gallery distance matrix, vectorised over queries.

The numbers are those of the standard per-query evaluation of person ReID
(the Market-1501 / MARS rule used by torchreid, CLIP-ReID and TF-CLIP): for
each query, the gallery is ranked by ``np.argsort`` of its row, gallery
samples of the same identity *and* the same camera are discarded, the CMC
curve is 1 from the first true match on, and AP is the mean of the precision
at each true match. Queries without any true match are left out.

Instead of an ``np.argsort`` of every row and a Python loop over the
queries, the position of each true match is *counted*, chunk by chunk of
queries: only the gallery entries no farther than a query's farthest true
match can come before one of its matches, so those are gathered and sorted
(values only; a small fraction of the row for a trained model, the whole row
sorted for a weak one), and a match's position is the number of them below
it, less the same-identity entries among them. Whenever the order of matches
and non-matches is determined by the values, this is the position
``np.argsort`` gives. A row where a true match ties in value with a
non-match, or where a true match is NaN (the result then depends on
``np.argsort``'s order among equal values), is ranked with ``np.argsort``
exactly as the standard loop does.

AP is summed as the standard code sums it: ``numpy``'s pairwise sum of a
float64 row with the precision at each true match and zeros elsewhere. The
rows are laid out the same way and reduced by the same ``sum``, cut to the
prefix that provably sums the same (see :func:`_summed_length`), so the
numbers are equal bit for bit, not only to rounding; the tests check it
against a plain loop, including rows longer than numpy's summation blocks.
"""
import logging
from typing import Optional, Tuple

import numpy as np
from mmengine.logging import print_log


def _as_1d(values, name: str, length: Optional[int] = None) -> np.ndarray:
    """Check that ``values`` is 1-D, with ``length`` items when given."""
    array = np.asarray(values)
    if array.ndim != 1 or (length is not None and array.shape[0] != length):
        expected = 'a 1-D array' if length is None else (
            f'a 1-D array of {length} items (one per row/column of distmat)')
        raise ValueError(f'{name} must be {expected}, got shape {array.shape}')
    return array


def _check_distmat(distmat) -> Tuple[np.ndarray, np.dtype]:
    """Validate the distance matrix; pick the dtype to count ranks in.

    float16 is counted in float32 and integers in int64: both keep every
    value, so the order and the ties are those of the input. Rows ranked
    with ``np.argsort`` use the input dtype, whose tie order may differ.
    """
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ValueError('distmat must be a 2-D [num_query, num_gallery] '
                         f'array, got shape {distmat.shape}')
    if distmat.shape[0] == 0 or distmat.shape[1] == 0:
        raise ValueError('distmat is empty: there must be at least one query '
                         f'and one gallery sample, got {distmat.shape}')
    if distmat.dtype in (np.float32, np.float64):
        return distmat, distmat.dtype
    if distmat.dtype == np.float16:
        return distmat, np.dtype(np.float32)
    if np.issubdtype(distmat.dtype, np.integer):
        return distmat, np.dtype(np.int64)
    raise TypeError('distmat must hold real numbers (float or int), got '
                    f'dtype {distmat.dtype}')


def count_valid_matches(q_pids, g_pids, q_camids, g_camids) -> np.ndarray:
    """Count, for each query, its gallery samples that count as true matches.

    A true match has the query's identity and was seen by another camera;
    same-identity samples of the query's own camera are discarded by the
    protocol. A query with no true match is skipped by :func:`evaluate_rank`.

    Args:
        q_pids (array-like): Identity of each query, shape ``[num_query]``.
        g_pids (array-like): Identity of each gallery sample,
            shape ``[num_gallery]``.
        q_camids (array-like): Camera of each query, shape ``[num_query]``.
        g_camids (array-like): Camera of each gallery sample,
            shape ``[num_gallery]``.

    Returns:
        np.ndarray: int64 array of shape ``[num_query]``.
    """
    q_pids = _as_1d(q_pids, 'q_pids')
    num_q = len(q_pids)
    q_camids = _as_1d(q_camids, 'q_camids', num_q)
    g_pids = _as_1d(g_pids, 'g_pids')
    g_camids = _as_1d(g_camids, 'g_camids', len(g_pids))

    _, pid_codes = np.unique(
        np.concatenate([q_pids, g_pids]), return_inverse=True)
    cams, cam_codes = np.unique(
        np.concatenate([q_camids, g_camids]), return_inverse=True)
    pid_codes = pid_codes.astype(np.int64)
    pair_codes = pid_codes * len(cams) + cam_codes
    q_pid, g_pid = pid_codes[:num_q], pid_codes[num_q:]
    q_pair, g_pair = pair_codes[:num_q], pair_codes[num_q:]
    same_pid = np.bincount(g_pid, minlength=pid_codes.max() + 1)[q_pid]
    same_pid_cam = np.bincount(g_pair, minlength=pair_codes.max() + 1)[q_pair]
    return same_pid - same_pid_cam


def _count_below(table: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Row-wise ``np.searchsorted(side='left')``, vectorised over rows.

    A branch-free bisection run on all rows at once: ``log2(n)`` steps over
    the ``values`` only, whatever the number of rows.

    Args:
        table (np.ndarray): ``[c, n]``, each row sorted ascending, ``n`` a
            power of two (see :func:`_sorted_table`).
        values (np.ndarray): ``[c, m]`` values to look up in their row.

    Returns:
        np.ndarray: For each value, how many entries of its row are smaller.
    """
    num_rows, length = table.shape
    flat = table.ravel()
    base = np.arange(num_rows)[:, None] * length
    index = np.broadcast_to(base, values.shape).copy()
    step = length >> 1
    # Invariant: the entries before `index` are all smaller than the value;
    # probing the last entry of the next `step` ones decides whether they
    # are too.
    while step:
        index += step * (flat[index + (step - 1)] < values)
        step >>= 1
    return index - base + (flat[index] < values)


def _sorted_table(rows: np.ndarray, pad: np.ndarray) -> np.ndarray:
    """``rows`` sorted, in a table padded to a power-of-two width."""
    length = rows.shape[1]
    table = np.full((rows.shape[0], 1 << max(length - 1, 0).bit_length()),
                    pad,
                    dtype=rows.dtype)
    table[:, :length] = rows
    table[:, :length].sort(axis=1)
    return table


def _positions_by_counting(dist: np.ndarray, gal: np.ndarray,
                           valid: np.ndarray, same_cam: np.ndarray):
    """Positions of the true matches in each row's ranking, by counting.

    Only the entries no farther than a row's farthest true match can be
    ranked before one of its matches; they are gathered (a small fraction
    of the row once a model ranks reasonably), sorted, and each match's
    position is the number of them below it, less the same-identity ones.

    Args:
        dist (np.ndarray): Rows of the distance matrix, ``[c, num_gallery]``.
        gal (np.ndarray): Gallery index of each same-identity entry of each
            row, ``[c, m]`` (padding where ``valid`` is False).
        valid (np.ndarray): Which entries of ``gal`` are real, ``[c, m]``.
        same_cam (np.ndarray): Whether each entry shares the query's camera.

    Returns:
        tuple: ``positions`` ``[c, m]`` (0-based position of the k-th true
        match in the ranked gallery without the discarded samples, valid for
        ``k < num_matches``) and ``undecided`` ``[c]`` (rows whose order
        depends on how ties or NaN are broken: rank them with argsort).
    """
    num_rows, width = gal.shape
    values = np.take_along_axis(dist, gal, axis=1)
    floating = np.issubdtype(dist.dtype, np.floating)
    if floating:
        pad, lowest = np.array([np.inf, -np.inf], dtype=dist.dtype)
    else:
        info = np.iinfo(dist.dtype)
        pad, lowest = np.array([info.max, info.min], dtype=dist.dtype)
    is_match = valid & ~same_cam
    num_match = is_match.sum(axis=1)
    column = np.arange(width)
    real = column[None, :] < num_match[:, None]
    # Padding sorts after every real value, so the first `num_match`
    # thresholds are the true matches' distances in ascending order.
    thresholds = np.sort(np.where(is_match, values, pad), axis=1)
    # "<= t" is "< the next representable value"; a true match at the
    # largest value (inf) has none: such rows, and those where a true match
    # is NaN (argsort ranks NaN last, in its own order; the NaN, or the
    # padding it pushes forward, is then among the first `num_match`),
    # take the argsort path.
    if floating:
        upper = np.nextafter(thresholds, pad)
        undecided = ((thresholds == pad) | (thresholds != thresholds)) & real
    else:
        upper = thresholds + 1
        undecided = (thresholds == pad) & real
    undecided = undecided.any(axis=1)
    searched = np.concatenate([thresholds, upper], axis=1)

    farthest = thresholds[np.arange(num_rows), np.maximum(num_match - 1, 0)]
    farthest[(num_match == 0) | undecided] = lowest
    near = dist <= farthest[:, None]
    length = dist.shape[1]
    if length < 1 << 15:
        # Summing the bytes in int16 (it cannot overflow) is several times
        # faster than np.count_nonzero along an axis.
        num_near = np.add.reduce(near.view(np.uint8), axis=1, dtype=np.int16)
    else:
        num_near = np.count_nonzero(near, axis=1)
    counts = np.empty(searched.shape, dtype=np.int64)
    # Rows whose farthest match is deep in the ranking (a weak model) are
    # cheaper to sort whole than to gather.
    dense = num_near > length // 8
    if dense.any():
        rows = np.flatnonzero(dense)
        counts[rows] = _count_below(
            _sorted_table(dist[rows], pad), searched[rows])
        near[rows] = False
    if not dense.all():
        rows = np.flatnonzero(~dense)
        count = num_near[rows].astype(np.int64)
        near_row, near_col = np.divmod(np.flatnonzero(near), length)
        # np.flatnonzero lists the entries row by row: an entry's column in
        # `nearest` is its rank within its row.
        rank = np.arange(near_row.size) - np.repeat(
            np.cumsum(count) - count, count)
        nearest = np.full((len(rows), max(int(count.max()), 1)), pad)
        slot = np.repeat(np.arange(len(rows)), count)
        nearest[slot, rank] = dist[near_row, near_col]
        # Padding sorts after every entry and is never below a threshold.
        counts[rows] = _count_below(
            _sorted_table(nearest, pad), searched[rows])
    below_all, upto_all = np.split(counts, 2, axis=1)
    same_sorted = _sorted_table(np.where(valid, values, pad), pad)
    below_same, upto_same = np.split(
        _count_below(same_sorted, searched), 2, axis=1)

    # Same-identity entries are true matches or discarded; any other entry
    # with exactly a true match's distance is a non-match tied with it, and
    # argsort's tie order decides which comes first.
    undecided |= ((upto_all - below_all > upto_same - below_same)
                  & real).any(axis=1)
    # Kept non-matches ranked before the k-th match, plus the k matches
    # before it (tied matches are adjacent, in any order).
    positions = below_all - below_same + column[None, :]
    return positions, undecided


def _positions_by_argsort(dist: np.ndarray, q_pids: np.ndarray,
                          g_pids: np.ndarray, q_camids: np.ndarray,
                          g_camids: np.ndarray, num_cols: int) -> np.ndarray:
    """Positions of the true matches, ranking the rows with ``np.argsort``.

    The standard rule, used for rows whose order depends on ties or NaN.

    Returns:
        np.ndarray: ``[c, num_cols]`` positions, valid for ``k < matches``.
    """
    order = np.argsort(dist, axis=1)
    same = g_pids[order] == q_pids[:, None]
    keep = ~(same & (g_camids[order] == q_camids[:, None]))
    kept_position = np.cumsum(keep, axis=1) - 1
    rows, cols = np.nonzero(same & keep)
    nth = np.arange(rows.size) - np.searchsorted(rows, rows, side='left')
    positions = np.zeros((dist.shape[0], num_cols), dtype=np.int64)
    positions[rows, nth] = kept_position[rows, cols]
    return positions


def _summed_length(length: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Shortest prefix whose ``np.sum`` equals the whole row's, bit for bit.

    ``numpy`` sums a contiguous float array pairwise: a row longer than 128
    is split at ``n // 2`` rounded down to a multiple of 8 and the halves'
    sums are added. When every non-zero lies in the first half, the second
    half sums to exactly 0 and adding it changes nothing, so the row's sum
    is the first half's; repeat while that holds.

    Args:
        length (np.ndarray): Length of each row.
        last (np.ndarray): Index of each row's last non-zero.

    Returns:
        np.ndarray: The prefix length to sum for each row.
    """
    length = length.copy()
    while True:
        half = length // 2
        half -= half % 8
        shorter = (length > 128) & (last < half)
        if not shorter.any():
            return length
        length[shorter] = half[shorter]


def _sum_precisions(positions: np.ndarray, num_match: np.ndarray,
                    num_kept: np.ndarray) -> np.ndarray:
    """Sum the precision at each true match, as the standard loop does.

    The standard code sums a float64 array with one entry per kept gallery
    sample (the precision at true matches, 0 elsewhere). ``numpy`` sums
    pairwise, so the rounding depends on the row's length and on where the
    non-zeros sit: the rows are laid out exactly like that (cut to the
    prefix that sums the same, see :func:`_summed_length`), grouped by
    length, and reduced by the same ``sum``.

    Args:
        positions (np.ndarray): ``[c, m]`` positions of the true matches,
            ascending in each row.
        num_match (np.ndarray): ``[c]`` true matches per row (all > 0).
        num_kept (np.ndarray): ``[c]`` gallery samples kept per row.

    Returns:
        np.ndarray: ``[c]`` float64 sums, in the order of the input rows.
    """
    last = positions[np.arange(len(num_match)), num_match - 1]
    length = _summed_length(num_kept, last)
    by_length = np.argsort(length, kind='stable')
    positions = positions[by_length]
    length = length[by_length]
    column = np.arange(positions.shape[1])
    rows, cols = np.nonzero(column[None, :] < num_match[by_length, None])
    where = positions[rows, cols]
    table = np.zeros((len(length), int(length.max())), dtype=np.float64)
    # Precision at the k-th match, k = cols + 1, as the standard code
    # computes it: (matches so far) / (1-based rank), in float64.
    table[rows, where] = (cols + 1) / (where + 1.0)
    sums = np.empty(len(length), dtype=np.float64)
    starts = np.flatnonzero(np.r_[True, length[1:] != length[:-1]])
    for start, end in zip(starts, np.r_[starts[1:], len(length)]):
        sums[start:end] = table[start:end, :length[start]].sum(axis=1)
    result = np.empty_like(sums)
    result[by_length] = sums
    return result


def evaluate_rank(distmat,
                  q_pids,
                  g_pids,
                  q_camids,
                  g_camids,
                  max_rank: int = 50,
                  chunk_size: int = 128) -> Tuple[np.ndarray, float]:
    """Compute the CMC curve and mAP of a ReID ranking.

    The protocol and the numbers are those of the standard per-query loop
    (Market-1501 / MARS rule, as in torchreid, CLIP-ReID and TF-CLIP):

    - each row is ranked as ``np.argsort(distmat, axis=1)`` ranks it;
    - gallery samples with the query's identity *and* camera are discarded
      (with the query-in-gallery protocol, that includes the query itself);
    - true matches are the remaining gallery samples of the query's
      identity; a query without any is skipped (counted and logged);
    - CMC at rank ``r`` is the fraction of (kept) queries whose first true
      match is within the top ``r``; AP is the mean, over the true matches,
      of the precision at each of them; mAP the mean AP over kept queries.

    Queries are processed ``chunk_size`` rows at a time, so the work memory
    is at most about ``chunk_size * num_gallery * 13`` bytes (a mask, a
    sorted copy of the rows, a float64 row sum) rather than the
    ``num_query * num_gallery`` int64 index matrix of a full argsort
    (193 MB at MARS size, 1,980 x 12,180). At that size it runs about 13x
    faster than the per-query loop on a trained model's distances, about 4x
    on an almost random ranking, which it sorts whole
    (``tools/analysis_tools/benchmark_eval.py``; ``docs/benchmarks.md``).

    Args:
        distmat (array-like): Distances ``[num_query, num_gallery]``, float
            or int; smaller is closer.
        q_pids (array-like): Identity of each query, ``[num_query]``.
        g_pids (array-like): Identity of each gallery sample,
            ``[num_gallery]``.
        q_camids (array-like): Camera of each query, ``[num_query]``.
        g_camids (array-like): Camera of each gallery sample,
            ``[num_gallery]``.
        max_rank (int): Length of the CMC curve; cut to ``num_gallery`` (with
            a note in the log) when the gallery is smaller. Defaults to 50.
        chunk_size (int): Queries processed at once. Defaults to 128.

    Returns:
        tuple[np.ndarray, float]: The CMC curve (float32, ``[max_rank]``,
        fractions in [0, 1]) and the mAP (a fraction in [0, 1]).
    """
    distmat, count_dtype = _check_distmat(distmat)
    num_q, num_g = distmat.shape
    q_pids = _as_1d(q_pids, 'q_pids', num_q)
    g_pids = _as_1d(g_pids, 'g_pids', num_g)
    q_camids = _as_1d(q_camids, 'q_camids', num_q)
    g_camids = _as_1d(g_camids, 'g_camids', num_g)
    if int(max_rank) < 1:
        raise ValueError(f'max_rank must be >= 1, got {max_rank}')
    if int(chunk_size) < 1:
        raise ValueError(f'chunk_size must be >= 1, got {chunk_size}')
    max_rank, chunk_size = int(max_rank), int(chunk_size)
    if num_g < max_rank:
        print_log(
            f'Note: the gallery has only {num_g} samples; the CMC curve is '
            f'cut to rank {num_g}.',
            logger='current')
        max_rank = num_g

    num_valid = count_valid_matches(q_pids, g_pids, q_camids, g_camids)
    num_skipped = int((num_valid == 0).sum())
    if num_skipped == num_q:
        raise ValueError(
            f'None of the {num_q} queries has a true match in the gallery '
            '(same identity, another camera): CMC and mAP are undefined. '
            'Check the pids and camids of the query and gallery sets.')
    if num_skipped:
        print_log(
            f'{num_skipped} of {num_q} queries have no true match in the '
            'gallery (same identity, another camera); they are left out of '
            'CMC and mAP, as in the standard evaluation.',
            logger='current',
            level=logging.WARNING)

    # Gallery indices grouped by identity, so that each query reads its
    # same-identity entries without scanning the gallery.
    pids, g_codes = np.unique(g_pids, return_inverse=True)
    by_pid = np.argsort(g_codes, kind='stable')
    pid_count = np.bincount(g_codes, minlength=len(pids))
    pid_start = np.cumsum(pid_count) - pid_count
    q_code = np.minimum(np.searchsorted(pids, q_pids), len(pids) - 1)
    known = pids[q_code] == q_pids
    q_start = pid_start[q_code]
    q_count = np.where(known, pid_count[q_code], 0)

    first_hit_count = np.zeros(max_rank + 1, dtype=np.int64)
    average_precisions = []
    for start in range(0, num_q, chunk_size):
        rows = slice(start, min(start + chunk_size, num_q))
        dist = distmat[rows]
        width = max(int(q_count[rows].max()), 1)
        offset = np.arange(width)
        valid = offset[None, :] < q_count[rows, None]
        gal = by_pid[np.where(valid, q_start[rows, None] + offset, 0)]
        same_cam = g_camids[gal] == q_camids[rows, None]
        num_match = (valid & ~same_cam).sum(axis=1)
        num_kept = num_g - (valid & same_cam).sum(axis=1)

        positions, undecided = _positions_by_counting(
            dist.astype(count_dtype, copy=False), gal, valid, same_cam)
        if undecided.any():
            redo = np.flatnonzero(undecided)
            positions[redo] = _positions_by_argsort(dist[redo],
                                                    q_pids[rows][redo], g_pids,
                                                    q_camids[rows][redo],
                                                    g_camids, width)

        kept = num_match > 0
        if not kept.any():
            continue
        first = positions[kept, 0]
        first_hit_count += np.bincount(
            np.minimum(first, max_rank), minlength=max_rank + 1)
        sums = _sum_precisions(positions[kept], num_match[kept],
                               num_kept[kept])
        average_precisions.append(sums / num_match[kept])

    num_kept_queries = num_q - num_skipped
    cmc = np.cumsum(first_hit_count[:max_rank]).astype(np.float32)
    cmc = cmc / float(num_kept_queries)
    mean_ap = float(np.mean(np.concatenate(average_precisions)))
    return cmc, mean_ap
