# Copyright (c) mmtfclip contributors. All rights reserved.
"""CMC, mAP and mINP of a query-gallery distance matrix, by counting.

The protocol is the standard one of person ReID (the Market-1501 / MARS
rule of torchreid, fast-reid, CLIP-ReID and TF-CLIP): gallery entries with
the query's identity *and* camera are discarded, the other entries of the
query's identity are its true matches, a query without any is skipped.

No row is ranked. The position of a true match in its query's ranking is
the number of kept gallery entries ranked before it, and that is a count:
the other true matches closer than it, plus the entries of *other*
identities at a distance no greater than it (:func:`evaluate_rank_per_query`
says why this is also the tie rule). Each count is either a comparison of
the row with the query's few true-match distances or, for a query with many
true matches, a ``searchsorted`` of those distances in the sorted row.
"""
import logging
from typing import NamedTuple, Tuple, Union

import numpy as np
from mmengine.logging import print_log

# Queries evaluated at once.
_CHUNK_SIZE = 64
# Up to this many true matches, comparing the row with each of them is
# cheaper than sorting it (numpy 2.4, AVX-512: a comparison pass over a row
# costs about a twentieth of its sort; measured break-even 16-32).
_MAX_COMPARE_PASSES = 20


def valid_gallery_mask(q_pids, g_pids, q_camids, g_camids) -> np.ndarray:
    """Which gallery entries count for which query: the same-id camera rule.

    A gallery entry with the query's identity *and* the query's camera is
    discarded (with the query-in-gallery protocol, that is the query itself
    too); every other entry is kept, as a true match (same identity) or a
    non-match. This is the one place the rule is written.

    The query arrays broadcast against the gallery arrays with a gallery
    axis appended: 1-D queries and 1-D gallery give ``[num_query,
    num_gallery]``; scalars for one query give ``[num_gallery]``; queries of
    shape ``[c]`` against gallery labels gathered per query, ``[c, w]``,
    give ``[c, w]``.

    Args:
        q_pids (array-like): Identity of each query.
        g_pids (array-like): Identity of each gallery entry.
        q_camids (array-like): Camera of each query.
        g_camids (array-like): Camera of each gallery entry.

    Returns:
        np.ndarray: bool, True where the gallery entry is kept.
    """
    q_pids = np.asarray(q_pids)[..., None]
    q_camids = np.asarray(q_camids)[..., None]
    return ~((np.asarray(g_pids) == q_pids) &
             (np.asarray(g_camids) == q_camids))


def _as_1d(values, name: str, length=None) -> np.ndarray:
    """Check that ``values`` is 1-D, with ``length`` items when given."""
    array = np.asarray(values)
    if array.ndim != 1 or (length is not None and array.shape[0] != length):
        expected = 'a 1-D array' if length is None else (
            f'a 1-D array of {length} items (one per row/column of distmat)')
        raise ValueError(f'{name} must be {expected}, got shape {array.shape}')
    return array


def _check_labels(q_pids, g_pids, q_camids, g_camids, shape=None):
    """The four label arrays, 1-D and of matching lengths."""
    num_q = None if shape is None else shape[0]
    num_g = None if shape is None else shape[1]
    q_pids = _as_1d(q_pids, 'q_pids', num_q)
    g_pids = _as_1d(g_pids, 'g_pids', num_g)
    q_camids = _as_1d(q_camids, 'q_camids', len(q_pids))
    g_camids = _as_1d(g_camids, 'g_camids', len(g_pids))
    return q_pids, g_pids, q_camids, g_camids


def _first(indices: np.ndarray, limit: int = 5) -> str:
    """The first few indices of a list, for messages."""
    shown = ', '.join(str(i) for i in indices[:limit])
    return shown + (', ...' if len(indices) > limit else '')


def _check_distmat(distmat) -> np.ndarray:
    """Validate the distances; return them in a float dtype that holds them.

    float16 and small integers are widened to float32, 32- and 64-bit
    integers to float64 (exact up to 2**53): the order and the ties are
    those of the input.
    """
    distmat = np.asarray(distmat)
    if distmat.ndim != 2:
        raise ValueError('distmat must be a 2-D [num_query, num_gallery] '
                         f'array, got shape {distmat.shape}')
    if distmat.shape[0] == 0 or distmat.shape[1] == 0:
        raise ValueError('distmat is empty: there must be at least one query '
                         f'and one gallery sample, got {distmat.shape}')
    if not (np.issubdtype(distmat.dtype, np.floating)
            or np.issubdtype(distmat.dtype, np.integer)):
        raise TypeError('distmat must hold real numbers (float or int), got '
                        f'dtype {distmat.dtype}')
    work = distmat.astype(
        np.promote_types(distmat.dtype, np.float32), copy=False)
    # One reduction finds the common case (all finite) fast; a sum that
    # overflows is re-checked entry by entry.
    if not np.isfinite(work.sum()):
        finite = np.isfinite(work)
        bad_rows = np.flatnonzero(~finite.all(axis=1))
        if bad_rows.size:
            bad_cols = np.flatnonzero(~finite.all(axis=0))
            raise ValueError(
                f'distmat holds {int((~finite).sum())} NaN or infinite '
                f'distances, in {bad_rows.size} of {distmat.shape[0]} query '
                f'rows (queries {_first(bad_rows)}) and {bad_cols.size} of '
                f'{distmat.shape[1]} gallery columns (gallery entries '
                f'{_first(bad_cols)}): the features they come from are '
                'broken; no CMC or mAP is computed from them')
    if np.issubdtype(distmat.dtype, np.integer) and distmat.itemsize == 8:
        if max(abs(int(distmat.min())), abs(int(distmat.max()))) > 2**53:
            raise ValueError('distmat holds integers beyond 2**53, which '
                             'cannot be compared exactly as floats')
    return work


class PerQueryRank(NamedTuple):
    """The ranking of each query's true matches, summarised.

    Attributes:
        ap (np.ndarray): float64 ``[num_query]`` average precision, NaN for
            a query without a true match.
        inp (np.ndarray): float64 ``[num_query]`` inverse negative penalty
            (true matches / 1-based position of the last one), NaN for a
            query without a true match.
        first_match (np.ndarray): int64 ``[num_query]`` 0-based position of
            the first true match among the kept gallery entries, -1 for a
            query without a true match.
        num_matches (np.ndarray): int64 ``[num_query]`` true matches.
    """
    ap: np.ndarray
    inp: np.ndarray
    first_match: np.ndarray
    num_matches: np.ndarray


def _closer_counts(distmat: np.ndarray, rows: np.ndarray,
                   thresholds: np.ndarray) -> np.ndarray:
    """How many entries of each row are ``<=`` each of the row's thresholds.

    Args:
        distmat (np.ndarray): ``[num_query, num_gallery]`` distances.
        rows (np.ndarray): ``[c]`` rows of ``distmat`` to count in.
        thresholds (np.ndarray): ``[c, m]`` values, ascending in each row.

    Returns:
        np.ndarray: int64 ``[c, m]`` counts.
    """
    num_rows, width = thresholds.shape
    num_g = distmat.shape[1]
    if width <= _MAX_COMPARE_PASSES:
        # One row at a time, its comparisons in a buffer that stays in the
        # cache; summing the bytes in 16 bits is about 2.5x faster than
        # np.count_nonzero along an axis.
        closer = np.empty((width, num_g), dtype=bool)
        count_dtype = np.uint16 if num_g < 1 << 16 else np.int64
        counts = np.empty((num_rows, width), dtype=np.int64)
        for i, row in enumerate(rows):
            np.less_equal(distmat[row], thresholds[i, :, None], out=closer)
            counts[i] = np.add.reduce(
                closer.view(np.uint8), axis=1, dtype=count_dtype)
        return counts
    sorted_rows = distmat[rows]  # a copy: rows is an index array
    sorted_rows.sort(axis=1)
    return np.stack([
        np.searchsorted(row, values, side='right')
        for row, values in zip(sorted_rows, thresholds)
    ])


class _SameIdentity:
    """Each query's same-identity gallery entries and its true matches.

    The gallery is grouped by identity once, so that a query reads its own
    identity's entries without scanning the gallery.
    """

    def __init__(self, q_pids, g_pids, q_camids, g_camids) -> None:
        self.q_pids, self.q_camids = q_pids, q_camids
        self.g_pids, self.g_camids = g_pids, g_camids
        pids, codes = np.unique(g_pids, return_inverse=True)
        if len(pids) == 0:
            pids = np.zeros(1, dtype=g_pids.dtype)
        self.by_pid = np.argsort(codes, kind='stable')
        count = np.bincount(codes, minlength=len(pids))
        code = np.minimum(np.searchsorted(pids, q_pids), len(pids) - 1)
        self.count = np.where(pids[code] == q_pids, count[code], 0)
        self.start = (np.cumsum(count) - count)[code]

    def __call__(self, rows: np.ndarray):
        """The entries of ``rows``' queries, padded to the longest.

        Returns:
            tuple: gallery indices ``[c, w]``, which of them are real
            (``present``) and which are true matches (``is_match``).
        """
        offset = np.arange(max(int(self.count[rows].max()), 1))
        present = offset < self.count[rows, None]
        same = self.by_pid[np.where(present, self.start[rows, None] + offset,
                                    0)]
        is_match = present & valid_gallery_mask(
            self.q_pids[rows], self.g_pids[same], self.q_camids[rows],
            self.g_camids[same])
        return same, present, is_match

    def num_matches(self) -> np.ndarray:
        """The number of true matches of every query."""
        counts = np.zeros(len(self.q_pids), dtype=np.int64)
        if len(self.g_pids) == 0:
            return counts
        for start in range(0, len(counts), 256):
            rows = np.arange(start, min(start + 256, len(counts)))
            counts[rows] = self(rows)[2].sum(axis=1)
        return counts


def evaluate_rank_per_query(distmat, q_pids, g_pids, q_camids,
                            g_camids) -> PerQueryRank:
    """AP, INP and first-match position of each query, by counting.

    For each query, the gallery entries with its identity and camera are
    discarded (:func:`valid_gallery_mask`) and the remaining ones of its
    identity are its true matches, with distances ``t_1 <= ... <= t_m``.
    The 0-based position of the k-th true match among the kept entries is

        ``(k - 1) + #{entries of another identity with distance <= t_k}``.

    **Tie rule**: an entry of another identity at exactly a true match's
    distance is ranked before it (the pessimistic order; tied true matches
    take consecutive positions, which is the same for any order among
    them). On distances without such ties this is the ranking of the
    argsort-based loops (torchreid's ``eval_market1501``, fast-reid's
    ``evaluate_rank``, the TF-CLIP authors' ``eval_func``,
    ``utils/metrics.py`` line 28 of their code;
    :func:`~mmtfclip.evaluation.functional.reference_evaluate_rank`); with
    ties, those loops rank by ``np.argsort``'s order among equal values,
    which is not defined, and may score higher, never lower.

    AP is the mean over the true matches of ``k / (position_k + 1)``, INP
    (fast-reid's) ``m / (position_m + 1)``.

    The queries are taken 64 at a time, in the order of their number of
    true matches, so that a chunk's queries need about as many counts each.

    Args:
        distmat (array-like): Finite distances ``[num_query, num_gallery]``,
            float or int; smaller is closer.
        q_pids (array-like): Identity of each query, ``[num_query]``.
        g_pids (array-like): Identity of each gallery entry,
            ``[num_gallery]``.
        q_camids (array-like): Camera of each query, ``[num_query]``.
        g_camids (array-like): Camera of each gallery entry,
            ``[num_gallery]``.

    Returns:
        PerQueryRank: ``ap``, ``inp``, ``first_match``, ``num_matches``.
    """
    distmat = _check_distmat(distmat)
    num_q = distmat.shape[0]
    labels = _check_labels(q_pids, g_pids, q_camids, g_camids, distmat.shape)
    same_identity = _SameIdentity(*labels)
    num_matches = same_identity.num_matches()
    result = PerQueryRank(
        ap=np.full(num_q, np.nan),
        inp=np.full(num_q, np.nan),
        first_match=np.full(num_q, -1, dtype=np.int64),
        num_matches=num_matches)
    ranked = np.flatnonzero(num_matches)
    ranked = ranked[np.argsort(num_matches[ranked], kind='stable')]
    for start in range(0, len(ranked), _CHUNK_SIZE):
        rows = ranked[start:start + _CHUNK_SIZE]
        same, present, is_match = same_identity(rows)
        num_match = num_matches[rows]
        values = distmat[rows[:, None], same]
        # The true-match distances ascending, +inf after the row's last.
        thresholds = np.sort(
            np.where(is_match, values, np.inf), axis=1)[:, :num_match.max()]
        same_values = np.where(present, values, np.inf)
        same_closer = np.sum(
            same_values[:, None, :] <= thresholds[..., None], axis=2)
        others_closer = _closer_counts(distmat, rows, thresholds) - same_closer

        k = np.arange(thresholds.shape[1])
        position = others_closer + k
        precision = np.where(k < num_match[:, None],
                             (k + 1) / (position + 1.0), 0.0)
        last = position[np.arange(len(rows)), num_match - 1]
        result.ap[rows] = precision.sum(axis=1) / num_match
        result.inp[rows] = num_match / (last + 1.0)
        result.first_match[rows] = position[:, 0]
    return result


def count_valid_matches(q_pids, g_pids, q_camids, g_camids) -> np.ndarray:
    """Count, for each query, its gallery entries that are true matches.

    A true match has the query's identity and is kept by
    :func:`valid_gallery_mask`. A query with no true match is skipped by
    :func:`evaluate_rank`.

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
    return _SameIdentity(
        *_check_labels(q_pids, g_pids, q_camids, g_camids)).num_matches()


def evaluate_rank(
    distmat,
    q_pids,
    g_pids,
    q_camids,
    g_camids,
    max_rank: int = 50,
    return_minp: bool = False,
    return_per_query: bool = False
) -> Union[Tuple[np.ndarray, float], Tuple[np.ndarray, float, float], tuple]:
    """Compute the CMC curve and mAP (and mINP) of a ReID ranking.

    The standard protocol (Market-1501 / MARS rule, as in torchreid,
    fast-reid, CLIP-ReID and TF-CLIP), computed by counting, with the tie
    rule of :func:`evaluate_rank_per_query`:

    - gallery entries with the query's identity *and* camera are discarded
      (with the query-in-gallery protocol, that includes the query itself);
    - true matches are the remaining entries of the query's identity; a
      query without any is skipped (counted and logged);
    - CMC at rank ``r`` is the fraction of (kept) queries whose first true
      match is within the top ``r``; AP is the mean, over the true matches,
      of the precision at each of them; mAP the mean AP over kept queries;
      mINP (fast-reid's, Ye et al., TPAMI 2021) the mean over kept queries
      of ``matches / position of the last match``.

    On distances without ties between a true match and another identity it
    equals the per-query loops to rounding (``reference_evaluate_rank``;
    the tests and ``tools/analysis_tools/benchmark_eval.py`` check 1e-9).
    Work memory is a few MB: 64 queries at a time.

    Args:
        distmat (array-like): Finite distances ``[num_query, num_gallery]``,
            float or int; smaller is closer. NaN or infinite entries are
            refused, naming the rows.
        q_pids (array-like): Identity of each query, ``[num_query]``.
        g_pids (array-like): Identity of each gallery sample,
            ``[num_gallery]``.
        q_camids (array-like): Camera of each query, ``[num_query]``.
        g_camids (array-like): Camera of each gallery sample,
            ``[num_gallery]``.
        max_rank (int): Length of the CMC curve; cut to ``num_gallery`` (with
            a note in the log) when the gallery is smaller. Defaults to 50.
        return_minp (bool): Also return the mINP. Defaults to False.
        return_per_query (bool): Also return each query's AP, INP and first
            match, the :class:`PerQueryRank` of
            :func:`evaluate_rank_per_query`, last. Defaults to False.

    Returns:
        tuple: The CMC curve (float32, ``[max_rank]``, fractions in [0, 1])
        and the mAP (a fraction in [0, 1]); then, when asked, the mINP (a
        fraction) and the :class:`PerQueryRank`.
    """
    if int(max_rank) < 1:
        raise ValueError(f'max_rank must be >= 1, got {max_rank}')
    per_query = evaluate_rank_per_query(distmat, q_pids, g_pids, q_camids,
                                        g_camids)
    num_q, num_g = np.shape(distmat)
    max_rank = int(max_rank)
    if num_g < max_rank:
        print_log(
            f'Note: the gallery has only {num_g} samples; the CMC curve is '
            f'cut to rank {num_g}.',
            logger='current')
        max_rank = num_g

    kept = per_query.num_matches > 0
    num_skipped = num_q - int(kept.sum())
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
    first = np.minimum(per_query.first_match[kept], max_rank)
    hits = np.bincount(first, minlength=max_rank + 1)[:max_rank]
    cmc = np.cumsum(hits).astype(np.float32) / float(kept.sum())
    results = (cmc, float(np.mean(per_query.ap[kept])))
    if return_minp:
        results += (float(np.mean(per_query.inp[kept])), )
    if return_per_query:
        results += (per_query, )
    return results
