# Copyright (c) mmtfclip contributors. All rights reserved.
"""Time ``evaluate_rank`` and ``re_ranking`` against plain per-query loops.

The data mimic the MARS test set as the TF-CLIP authors evaluate it: 1,980
queries against the 11,310 valid test tracklets (the 9,330 of the gallery
split plus the queries, junk dropped; ``query_in_gallery=True``), 636
identities seen by 2 to 6 cameras with an uneven number of tracklets each,
about a fifth of the gallery distractors (pid 0). Embeddings are random
vectors: an identity centre plus a camera shift plus noise. ``--noise
1.4`` gives a ranking like a trained model's (mAP about 89 %, as TF-CLIP
reports on MARS), ``--noise 4`` an almost random one (an untrained model);
both are run by default.

``evaluate_rank`` is timed against
:func:`~mmtfclip.evaluation.functional.reference_evaluate_rank`, the
argsort loop of torchreid, fast-reid and the TF-CLIP authors, on the
float32 distances the metric computes; runs alternate, the median is
reported. Two agreement checks: on those float32 distances, where a true
match can tie with another identity's entry (the counting ranks it after
them, argsort in its own order), the largest difference of any query's AP
and the number of queries with such ties; on float64 distances of the same
embeddings (no ties), whether CMC, mAP, mINP and every AP agree to 1e-9.
``re_ranking`` is timed against the per-sample k-reciprocal loop and
checked bit for bit. The tool prints a JSON with the times and speed-ups.

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
                                            evaluate_rank,
                                            evaluate_rank_per_query,
                                            re_ranking,
                                            reference_evaluate_rank)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Benchmark evaluate_rank and re_ranking against plain '
        'per-query loops')
    parser.add_argument('--num-query', type=int, default=1980)
    parser.add_argument('--num-gallery', type=int, default=11310)
    parser.add_argument('--num-ids', type=int, default=636)
    parser.add_argument('--num-cams', type=int, default=6)
    parser.add_argument('--dim', type=int, default=256)
    parser.add_argument(
        '--noise',
        type=float,
        nargs='+',
        default=[1.4, 4.0],
        help='embedding noise, one evaluate_rank benchmark each; 1.4 gives '
        'a trained-model-like ranking (mAP about 89 %%, as TF-CLIP on '
        'MARS), 4 an almost random one')
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


def tied_queries(distmat, q_pids, g_pids, q_camids, g_camids) -> int:
    """Queries where a true match ties with another identity's entry."""
    count = 0
    for q in range(len(q_pids)):
        same = g_pids == q_pids[q]
        match = same & (g_camids != q_camids[q])
        count += bool(np.isin(distmat[q, match], distmat[q, ~same]).any())
    return count


def benchmark_rank(args, noise: float) -> dict:
    """Time evaluate_rank against the reference loop; check agreement."""
    query, gallery, *labels = make_test_set(args.num_query, args.num_gallery,
                                            args.num_ids, args.num_cams,
                                            args.dim, args.seed, noise)
    distmat = compute_distance_matrix(query, gallery).numpy()
    (ref_ms, new_ms), (reference, result) = timed([
        partial(reference_evaluate_rank, distmat, *labels),
        partial(evaluate_rank, distmat, *labels, return_minp=True)
    ], args.repeat)
    ref_ap = reference[3]
    new_ap = evaluate_rank_per_query(distmat, *labels).ap

    # Float64 distances of the same embeddings: no ties, so the two must
    # agree to rounding.
    exact = (2 - 2 * query.double() @ gallery.double().t()).numpy()
    exact_ref = reference_evaluate_rank(exact, *labels)
    exact_new = evaluate_rank(exact, *labels, return_minp=True)
    exact_ap = evaluate_rank_per_query(exact, *labels).ap
    agree = bool(
        np.array_equal(exact_new[0], exact_ref[0])
        and abs(exact_new[1] - exact_ref[1]) <= 1e-9
        and abs(exact_new[2] - exact_ref[2]) <= 1e-9 and np.allclose(
            exact_ap, exact_ref[3], rtol=0, atol=1e-9, equal_nan=True))
    return dict(
        noise=noise,
        num_query=args.num_query,
        num_gallery=args.num_gallery,
        repeat=args.repeat,
        reference_ms=round(ref_ms, 1),
        counting_ms=round(new_ms, 1),
        speedup=round(ref_ms / new_ms, 1),
        mAP=round(result[1] * 100, 2),
        rank1=round(float(result[0][0]) * 100, 2),
        mINP=round(result[2] * 100, 2),
        float32=dict(
            queries_with_ties=tied_queries(distmat, *labels),
            cmc_equal=bool(np.array_equal(result[0], reference[0])),
            max_ap_difference=float(np.nanmax(np.abs(new_ap - ref_ap))),
            map_difference=float(result[1] - reference[1])),
        float64_equal_to_1e_9=agree)


def main():
    args = parse_args()
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
        evaluate_rank=[benchmark_rank(args, noise) for noise in args.noise])

    if args.rerank_query > 0:
        num_ids = max(args.rerank_gallery // 10, 1)
        query, gallery, *_ = make_test_set(args.rerank_query,
                                           args.rerank_gallery, num_ids,
                                           args.num_cams, args.dim, args.seed,
                                           args.noise[0])
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
