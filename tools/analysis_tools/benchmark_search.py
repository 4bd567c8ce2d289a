# Copyright (c) mmtfclip contributors. All rights reserved.
"""Time gallery search on synthetic embeddings: exact vs faiss.

For each gallery size, a :class:`mmtfclip.apis.GalleryIndex` is filled with
synthetic embeddings (noisy copies of one identity centre per 10 entries,
so that neighbours exist as in a real gallery) and queried with the same
kind of vectors. It prints, per engine, the time to build the search
structure, the median time of a single query, the time per query of one
batch of queries, and the recall of the exact top-k. Nothing is read from
or written to disk.

Example::

    .venv/bin/python tools/analysis_tools/benchmark_search.py \\
        --sizes 10000 1000000 --dim 512 --queries 20
"""
import argparse
import json
import time

import numpy as np

from mmtfclip.apis import GalleryIndex, import_faiss
from mmtfclip.apis.gallery_index import auto_faiss_factory


def parse_args():
    parser = argparse.ArgumentParser(
        description='Time exact and faiss gallery search on synthetic '
        'embeddings')
    parser.add_argument(
        '--sizes',
        type=int,
        nargs='+',
        default=[10_000, 1_000_000],
        help='gallery sizes')
    parser.add_argument(
        '--dim', type=int, default=2048, help='embedding size (TF-CLIP: 2048)')
    parser.add_argument(
        '--queries', type=int, default=50, help='queries timed')
    parser.add_argument('--topk', type=int, default=10)
    parser.add_argument(
        '--factories',
        nargs='+',
        default=['Flat', 'auto'],
        help='faiss factory strings; auto: Flat below 100k rows, '
        'IVF{sqrt(N)},Flat from it on')
    parser.add_argument(
        '--nprobe',
        type=int,
        default=32,
        help='lists an IVF index visits per query')
    parser.add_argument('--seed', type=int, default=0)
    return parser.parse_args()


def synthetic(num, dim, centres, rng, block=100_000):
    """Noisy copies of random ``centres``, float32, made in blocks."""
    out = np.empty((num, dim), np.float32)
    for start in range(0, num, block):
        stop = min(start + block, num)
        picks = centres[rng.integers(0, len(centres), stop - start)]
        out[start:stop] = picks + 0.5 * rng.standard_normal(
            picks.shape, dtype=np.float32)
    return out


def timed_queries(index, queries, topk, engine, nprobe):
    """Median single-query time and per-query time of one batch (ms)."""
    singles = []
    for q in queries:
        start = time.perf_counter()
        index.search(q[None], topk, engine, nprobe)
        singles.append(time.perf_counter() - start)
    start = time.perf_counter()
    result = index.search(queries, topk, engine, nprobe)[0]
    batch = (time.perf_counter() - start) / len(queries)
    return 1e3 * float(np.median(singles)), 1e3 * batch, result


def main():
    args = parse_args()
    rng = np.random.default_rng(args.seed)
    rows = []
    for size in args.sizes:
        centres = rng.standard_normal((max(size // 10, 1), args.dim),
                                      dtype=np.float32)
        index = GalleryIndex()
        index.add(synthetic(size, args.dim, centres, rng), [{}] * size)
        queries = synthetic(args.queries, args.dim, centres, rng)
        single, batch, exact = timed_queries(index, queries, args.topk,
                                             'exact', args.nprobe)
        rows.append(
            dict(
                gallery=size,
                dim=args.dim,
                engine='exact',
                build_s=0.0,
                single_query_ms=single,
                batch_query_ms=batch,
                recall=1.0))
        print(json.dumps(rows[-1]), flush=True)
        import_faiss()
        factories = [
            auto_faiss_factory(size) if f == 'auto' else f
            for f in args.factories
        ]
        for factory in dict.fromkeys(factories):
            start = time.perf_counter()
            index.build_faiss(factory, rebuild=True)
            build = time.perf_counter() - start
            single, batch, found = timed_queries(index, queries, args.topk,
                                                 'faiss', args.nprobe)
            recall = np.mean([
                len(set(a) & set(b)) / args.topk for a, b in zip(exact, found)
            ])
            rows.append(
                dict(
                    gallery=size,
                    dim=args.dim,
                    engine=f'faiss {index.faiss_factory}' +
                    (f' nprobe={args.nprobe}'
                     if 'IVF' in index.faiss_factory else ''),
                    build_s=build,
                    single_query_ms=single,
                    batch_query_ms=batch,
                    recall=float(recall)))
            print(json.dumps(rows[-1]), flush=True)
        del index
    recall = f'recall@{args.topk}'
    print(f'\n{"gallery":>9} {"dim":>5}  {"engine":<28} {"build s":>8} '
          f'{"1 query ms":>10} {"batch ms/q":>10} {recall:>9}')
    for r in rows:
        print(f'{r["gallery"]:>9} {r["dim"]:>5}  {r["engine"]:<28} '
              f'{r["build_s"]:>8.2f} {r["single_query_ms"]:>10.2f} '
              f'{r["batch_query_ms"]:>10.3f} {r["recall"]:>9.3f}')


if __name__ == '__main__':
    main()
