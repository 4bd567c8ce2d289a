# Copyright (c) mmtfclip contributors. All rights reserved.
"""The per-query evaluation loop, written out plainly: the reference.

This is how the established ReID code bases evaluate a ranking:
torchreid's ``eval_market1501`` (``torchreid/metrics/rank.py``), fast-reid's
``evaluate_rank`` (``fastreid/evaluation/rank.py``, which adds mINP) and the
TF-CLIP authors' ``eval_func`` (``utils/metrics.py`` line 28 of
AsuradaYuci/TF-CLIP): ``np.argsort`` of the whole distance matrix, then one
query at a time, drop the same-identity same-camera entries, and read the
CMC, AP and INP off the binary vector of true matches.

It is kept as the yardstick of
:func:`~mmtfclip.evaluation.functional.evaluate_rank`, which computes the
same numbers by counting: the tests compare the two, and
``tools/analysis_tools/benchmark_eval.py`` times them in one process. It
is not meant for real evaluations (a ``num_query x num_gallery`` int64
index matrix, a Python loop over the queries).
"""
import numpy as np


def reference_evaluate_rank(distmat,
                            q_pids,
                            g_pids,
                            q_camids,
                            g_camids,
                            max_rank: int = 50):
    """CMC, mAP, mINP and per-query AP by the plain argsort loop.

    Ranks each row with ``np.argsort`` (default kind), so that ties between
    a true match and another entry are broken however argsort breaks them;
    on distances without such ties the numbers are those of
    ``evaluate_rank`` to rounding.

    Args:
        distmat (np.ndarray): ``[num_query, num_gallery]`` distances.
        q_pids, g_pids, q_camids, g_camids (np.ndarray): Identities and
            cameras of the queries and the gallery entries.
        max_rank (int): Length of the CMC curve (cut to the gallery size).
            Defaults to 50.

    Returns:
        tuple: ``cmc`` (float32 ``[max_rank]``), ``mAP``, ``mINP`` (floats)
        and ``ap`` (float64 ``[num_query]``, NaN for a query without a true
        match).
    """
    distmat = np.asarray(distmat)
    q_pids, g_pids = np.asarray(q_pids), np.asarray(g_pids)
    q_camids, g_camids = np.asarray(q_camids), np.asarray(g_camids)
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    # As those loops do: rank every row first, mark the same-identity
    # entries in ranked order, then walk the queries.
    order = np.argsort(distmat, axis=1)
    same_pid = (g_pids[order] == q_pids[:, None]).astype(np.int32)
    curves, inps = [], []
    aps = np.full(num_q, np.nan)
    for q in range(num_q):
        ranked = order[q]
        discarded = (g_pids[ranked] == q_pids[q]) & (
            g_camids[ranked] == q_camids[q])
        hits = same_pid[q][~discarded]
        if not hits.any():
            continue
        found = hits.cumsum()
        curves.append(np.minimum(found, 1)[:max_rank])
        precision = found / np.arange(1.0, len(hits) + 1)
        aps[q] = (precision * hits).sum() / hits.sum()
        last = np.flatnonzero(hits)[-1]
        inps.append(found[last] / (last + 1.0))
    cmc = np.asarray(curves).astype(np.float32).sum(axis=0) / len(curves)
    return cmc, float(np.nanmean(aps)), float(np.mean(inps)), aps
