# Copyright (c) mmtfclip contributors. All rights reserved.
"""Time ``evaluate_rank`` and ``re_ranking`` against plain per-query loops.

The data mimic the MARS test set: 1,980 queries against 12,180 gallery
tracklets by default, identities seen by 2 to 6 cameras with an uneven
number of tracklets each, about a fifth of the gallery distractors (pid 0),
the queries themselves in the gallery (the MARS protocol). Embeddings are
random vectors: an identity centre plus a camera shift plus noise. The
default noise gives a ranking like a trained model's (mAP about 89 %, as
TF-CLIP reports on MARS); ``--noise 4`` gives an almost random ranking (an
untrained model), the slowest case for ``evaluate_rank``, which then sorts
whole rows and meets many ties.

The reference loops below are written out the plain way the established
ReID code bases do it (full ``np.argsort`` of the distance matrix, one query
at a time); the tool checks that the numbers are identical (bit for bit) and
prints a JSON with the times and the speed-ups.

Example::

    python tools/analysis_tools/benchmark_eval.py
    python tools/analysis_tools/benchmark_eval.py --noise 4 --rerank-query 0
    python tools/analysis_tools/benchmark_eval.py --num-query 200 \
        --num-gallery 1000 --rerank-query 50 --rerank-gallery 200
"""
import argparse
import datetime
import json
import os
import platform
import time
from functools import partial

import numpy as np
import torch

from mmtfclip.evaluation.functional import (compute_distance_matrix,
                                            evaluate_rank, re_ranking)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Benchmark evaluate_rank and re_ranking against plain '
        'per-query loops')
    parser.add_argument('--num-query', type=int, default=1980)
    parser.add_argument('--num-gallery', type=int, default=12180)
    parser.add_argument('--num-ids', type=int, default=636)
    parser.add_argument('--num-cams', type=int, default=6)
    parser.add_argument('--dim', type=int, default=256)
    parser.add_argument(
        '--noise',
        type=float,
        default=1.4,
        help='embedding noise; 1.4 gives a trained-model-like ranking '
        '(mAP about 89 %%, as TF-CLIP on MARS), 4 an almost random one')
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument(
        '--rerank-query',
        type=int,
        default=300,
        help='queries of the re-ranking benchmark (0 skips it)')
    parser.add_argument('--rerank-gallery', type=int, default=1500)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--out', help='also write the JSON to this file')
    return parser.parse_args()


def make_test_set(num_query: int,
                  num_gallery: int,
                  num_ids: int,
                  num_cams: int,
                  dim: int,
                  seed: int,
                  noise: float = 1.4):
    """Random test set with a MARS-like identity and camera layout.

    Returns:
        tuple: query and gallery embeddings (torch), then the query pids,
        gallery pids, query camids and gallery camids (numpy).
    """
    rng = np.random.default_rng(seed)
    num_distractors = num_gallery // 5
    num_real = num_gallery - num_distractors
    if num_real < 2 * num_ids or num_query > num_real:
        raise ValueError('the gallery is too small for that many ids and '
                         'queries')
    # Uneven popularity: some identities have many tracklets.
    popularity = rng.lognormal(0.0, 0.6, num_ids)
    pids = rng.choice(num_ids, num_real, p=popularity / popularity.sum())
    pids[:2 * num_ids] = np.repeat(np.arange(num_ids), 2)
    id_cams = [
        rng.choice(num_cams, rng.integers(2, num_cams + 1), replace=False)
        for _ in range(num_ids)
    ]
    cams = np.array([rng.choice(id_cams[p]) for p in pids])
    # The two guaranteed tracklets of an identity come from two cameras.
    cams[:2 * num_ids] = np.stack([c[:2] for c in id_cams]).ravel()

    centres = rng.standard_normal((num_ids, dim))
    cam_shift = 0.5 * rng.standard_normal((num_cams, dim))
    real = centres[pids] + cam_shift[cams] + noise * rng.standard_normal(
        (num_real, dim))
    distractors = rng.standard_normal((num_distractors, dim)) * 1.5
    g_feats = np.concatenate([real, distractors]).astype(np.float32)
    g_pids = np.concatenate([pids + 1, np.zeros(num_distractors, np.int64)])
    g_cams = np.concatenate([cams, rng.integers(0, num_cams, num_distractors)])
    perm = rng.permutation(num_gallery)
    g_feats, g_pids, g_cams = g_feats[perm], g_pids[perm], g_cams[perm]

    # Queries: tracklets of real identities, taken round-robin over the
    # identities as MARS picks about three per identity; they stay in the
    # gallery too.
    real_index = np.flatnonzero(g_pids > 0)
    rng.shuffle(real_index)
    order = real_index[np.argsort(g_pids[real_index], kind='stable')]
    nth = np.arange(len(order)) - np.searchsorted(g_pids[order], g_pids[order])
    q_index = order[np.lexsort((g_pids[order], nth))][:num_query]
    query = torch.nn.functional.normalize(
        torch.from_numpy(g_feats[q_index]), dim=1)
    gallery = torch.nn.functional.normalize(torch.from_numpy(g_feats), dim=1)
    return (query, gallery, g_pids[q_index], g_pids, g_cams[q_index], g_cams)


def reference_evaluate_rank(distmat,
                            q_pids,
                            g_pids,
                            q_camids,
                            g_camids,
                            max_rank=50):
    """The usual per-query loop over a full argsort (the reference)."""
    num_q, num_g = distmat.shape
    max_rank = min(max_rank, num_g)
    order = np.argsort(distmat, axis=1)
    hits = (g_pids[order] == q_pids[:, None]).astype(np.int32)
    curves, precisions = [], []
    for q in range(num_q):
        drop = (g_pids[order[q]] == q_pids[q]) & (
            g_camids[order[q]] == q_camids[q])
        row = hits[q][~drop]
        if not row.any():
            continue
        found = row.cumsum()
        curves.append(np.minimum(found, 1)[:max_rank])
        precision = found / (np.arange(len(row)) + 1.0)
        precisions.append((precision * row).sum() / row.sum())
    cmc = np.asarray(curves).astype(np.float32).sum(0) / float(len(curves))
    return cmc, float(np.mean(precisions))


def reference_re_ranking(q_g_dist,
                         q_q_dist,
                         g_g_dist,
                         k1=20,
                         k2=6,
                         lambda_value=0.3):
    """k-reciprocal re-ranking, one sample at a time (the reference)."""
    num_q = q_g_dist.shape[0]
    full = np.block([[q_q_dist, q_g_dist], [q_g_dist.T, g_g_dist]])
    full = np.power(full, 2).astype(np.float32)
    dist = np.transpose(1. * full / np.max(full, axis=0))
    num = dist.shape[0]
    rank = np.argsort(dist, axis=1)
    half = int(np.around(k1 / 2.))

    def reciprocal(i, k):
        ahead = rank[i, :k + 1]
        back = np.array([i in rank[j, :k + 1] for j in ahead], dtype=bool)
        return ahead[back]

    codes = np.zeros((num, num), dtype=np.float32)
    for i in range(num):
        core = reciprocal(i, k1)
        members = core
        for candidate in core:
            extra = reciprocal(candidate, half)
            if len(np.intersect1d(extra, core)) > 2. / 3 * len(extra):
                members = np.append(members, extra)
        members = np.unique(members)
        weight = np.exp(-dist[i, members])
        codes[i, members] = weight / np.sum(weight)
    if k2 != 1:
        codes = np.stack(
            [np.mean(codes[rank[i, :k2]], axis=0) for i in range(num)])
    jaccard = np.zeros((num_q, num), dtype=np.float32)
    for i in range(num_q):
        shared = np.zeros(num, dtype=np.float32)
        for feature in np.flatnonzero(codes[i]):
            holders = np.flatnonzero(codes[:, feature])
            shared[holders] += np.minimum(codes[i, feature], codes[holders,
                                                                   feature])
        jaccard[i] = 1 - shared / (2. - shared)
    final = jaccard * (1 - lambda_value) + dist[:num_q] * lambda_value
    return final[:, num_q:]


def timed(fns, repeat):
    """Median wall time in ms of each function, and their last results.

    The functions run in turn, ``repeat`` rounds, so that a change in the
    machine's load affects them alike.
    """
    times = [[] for _ in fns]
    results = [None] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            start = time.perf_counter()
            results[i] = fn()
            times[i].append((time.perf_counter() - start) * 1000)
    return [float(np.median(t)) for t in times], results


def main():
    args = parse_args()
    query, gallery, q_pids, g_pids, q_cams, g_cams = make_test_set(
        args.num_query, args.num_gallery, args.num_ids, args.num_cams,
        args.dim, args.seed, args.noise)
    distmat = compute_distance_matrix(query, gallery).numpy()

    labels = (q_pids, g_pids, q_cams, g_cams)
    (ref_ms, vec_ms), ((ref_cmc, ref_map), (cmc, mean_ap)) = timed([
        partial(reference_evaluate_rank, distmat, *labels),
        partial(evaluate_rank, distmat, *labels)
    ], args.repeat)
    report = dict(
        date=datetime.date.today().isoformat(),
        machine=dict(
            cpu_count=os.cpu_count(),
            torch_threads=torch.get_num_threads(),
            processor=platform.processor() or platform.machine(),
            # Other processes skew both timings; the ratio less so, since
            # the two run in turn.
            load_average_1min=round(os.getloadavg()[0], 2),
            numpy=np.__version__,
            torch=torch.__version__),
        evaluate_rank=dict(
            num_query=args.num_query,
            num_gallery=args.num_gallery,
            repeat=args.repeat,
            noise=args.noise,
            reference_ms=round(ref_ms, 1),
            vectorised_ms=round(vec_ms, 1),
            speedup=round(ref_ms / vec_ms, 1),
            identical=bool(
                np.array_equal(cmc, ref_cmc) and mean_ap == ref_map),
            mAP=round(mean_ap * 100, 2),
            rank1=round(float(cmc[0]) * 100, 2)))

    if args.rerank_query > 0:
        num_ids = max(args.rerank_gallery // 10, 1)
        query, gallery, *_ = make_test_set(args.rerank_query,
                                           args.rerank_gallery, num_ids,
                                           args.num_cams, args.dim, args.seed,
                                           args.noise)
        matrices = [
            compute_distance_matrix(a, b).sqrt().numpy()
            for a, b in ((query, gallery), (query, query), (gallery, gallery))
        ]
        (ref_ms, vec_ms), (ref_dist, dist) = timed([
            partial(reference_re_ranking, *matrices),
            partial(re_ranking, *matrices)
        ], 1)
        report['re_ranking'] = dict(
            num_query=args.rerank_query,
            num_gallery=args.rerank_gallery,
            reference_ms=round(ref_ms, 1),
            vectorised_ms=round(vec_ms, 1),
            speedup=round(ref_ms / vec_ms, 1),
            identical=bool(np.array_equal(dist, ref_dist)))

    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        with open(args.out, 'w') as f:
            f.write(text + '\n')


if __name__ == '__main__':
    main()
