# Copyright (c) mmtfclip contributors. All rights reserved.
"""Draw the CMC curve and the histogram of per-query AP of evaluations.

Each input is an evaluation: a ``ReIDMetric`` dump (``tools/test.py
--dump x.npz``; its final distances, re-ranked if the run re-ranked, and
its query and gallery rows), or, with ``--query`` / ``--gallery``, the
feature files of ``extract_features.py`` (distances computed here, as the
metric computes them). The numbers are recomputed with
:func:`~mmtfclip.evaluation.functional.evaluate_rank`, the metric's own
function, so the figure's mAP, mINP and rank-1 are those of the log.

Example::

    python tools/analysis_tools/plot_cmc.py work_dirs/a.npz work_dirs/b.npz \\
        --labels baseline tfclip --out cmc.png
    python tools/analysis_tools/plot_cmc.py --query q.npz --gallery g.npz \\
        --out cmc.png
"""
import argparse
import os.path as osp

import numpy as np
import torch
import torch.nn.functional as F
from mmengine.utils import mkdir_or_exist

from mmtfclip.evaluation.functional import (compute_distance_matrix,
                                            evaluate_rank)
from mmtfclip.evaluation.functional.distance import DISTANCE_METRICS


def parse_args():
    parser = argparse.ArgumentParser(
        description='CMC curve and per-query AP histogram of evaluations')
    parser.add_argument(
        'dumps', nargs='*', help='ReIDMetric dumps (tools/test.py --dump)')
    parser.add_argument(
        '--query', help='query features of extract_features.py (.npz)')
    parser.add_argument(
        '--gallery', help='gallery features of extract_features.py (.npz)')
    parser.add_argument(
        '--dist-metric',
        choices=DISTANCE_METRICS,
        default='euclidean',
        help='with --query/--gallery: the distance (as ReIDMetric)')
    parser.add_argument(
        '--no-feat-norm',
        action='store_true',
        help='with --query/--gallery: do not L2-normalise the features')
    parser.add_argument(
        '--gallery-only',
        action='store_true',
        help='with --query/--gallery: the gallery is the gallery file only '
        '(torchreid protocol); by default the queries join it, as '
        'ReIDMetric(query_in_gallery=True) does')
    parser.add_argument(
        '--labels', nargs='+', help='one legend label per evaluation')
    parser.add_argument('--max-rank', type=int, default=50)
    parser.add_argument('--bins', type=int, default=20)
    parser.add_argument('--title', help='figure title')
    parser.add_argument('--out', required=True, help='output image file')
    return parser.parse_args()


def _load(path: str, keys) -> dict:
    """The arrays ``keys`` of an ``.npz``, naming the file when one lacks."""
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path}: no such file')
    with np.load(path, allow_pickle=False) as data:
        missing = [key for key in keys if key not in data]
        if missing:
            raise KeyError(f'{path} has no {missing}; it holds '
                           f'{sorted(data.files)}')
        return {key: data[key] for key in keys}


def from_dump(path: str):
    """Distances and labels of a ``ReIDMetric`` dump."""
    dump = _load(path,
                 ('distmat', 'pids', 'camids', 'query_index', 'gallery_index'))
    q, g = dump['query_index'], dump['gallery_index']
    return (dump['distmat'], dump['pids'][q], dump['pids'][g],
            dump['camids'][q], dump['camids'][g])


def from_features(query_path: str, gallery_path: str, dist_metric: str,
                  feat_norm: bool, query_in_gallery: bool):
    """Distances and labels from two ``extract_features.py`` files."""
    keys = ('features', 'pids', 'camids')
    query, gallery = _load(query_path, keys), _load(gallery_path, keys)
    if query_in_gallery:
        gallery = {k: np.concatenate([query[k], gallery[k]]) for k in keys}
    q_feats = torch.from_numpy(query['features']).float()
    g_feats = torch.from_numpy(gallery['features']).float()
    for path, feats in ((query_path, q_feats), (gallery_path, g_feats)):
        bad = int((~torch.isfinite(feats).all(dim=1)).sum())
        if bad:
            raise ValueError(f'{path}: {bad} of {len(feats)} feature rows '
                             'hold NaN or inf')
    if feat_norm:
        q_feats, g_feats = F.normalize(
            q_feats, dim=1), F.normalize(
                g_feats, dim=1)
    distmat = compute_distance_matrix(q_feats, g_feats, dist_metric).numpy()
    return (distmat, query['pids'], gallery['pids'], query['camids'],
            gallery['camids'])


def plot(evaluations, labels, max_rank: int, bins: int, title=None):
    """The figure: CMC curves left, per-query AP histograms right.

    Args:
        evaluations (list[tuple]): ``(distmat, q_pids, g_pids, q_camids,
            g_camids)`` of each evaluation.
        labels (list[str]): Legend label of each.
        max_rank (int): Last rank of the CMC curve.
        bins (int): Histogram bins over AP 0-100 %.
        title (str, optional): Figure title.

    Returns:
        tuple: The figure and, per evaluation, a dict of its mAP, mINP and
        rank-1 (percent).
    """
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    fig, (ax_cmc, ax_ap) = plt.subplots(1, 2, figsize=(11, 4.2))
    summaries = []
    edges = np.linspace(0, 100, bins + 1)
    for evaluation, label in zip(evaluations, labels):
        cmc, mean_ap, mean_inp, per_query = evaluate_rank(
            *evaluation,
            max_rank=max_rank,
            return_minp=True,
            return_per_query=True)
        summary = dict(
            label=label,
            mAP=mean_ap * 100,
            mINP=mean_inp * 100,
            rank1=float(cmc[0]) * 100)
        summaries.append(summary)
        name = (f'{label}: mAP {summary["mAP"]:.1f}, rank-1 '
                f'{summary["rank1"]:.1f}, mINP {summary["mINP"]:.1f}')
        ranks = np.arange(1, len(cmc) + 1)
        line, = ax_cmc.plot(ranks, cmc * 100, label=name)
        ap = per_query.ap[per_query.num_matches > 0] * 100
        ax_ap.hist(
            ap,
            bins=edges,
            histtype='step',
            linewidth=1.5,
            color=line.get_color(),
            label=f'{label} ({len(ap)} queries)')
        ax_ap.axvline(summary['mAP'], color=line.get_color(), linestyle='--')
    ax_cmc.set(
        xlabel='rank', ylabel='matching rate (%)', title='CMC', ylim=(0, 101))
    ax_cmc.grid(alpha=0.3)
    ax_cmc.legend(loc='lower right', fontsize='small')
    ax_ap.set(
        xlabel='average precision (%)',
        ylabel='queries',
        title='AP per query (dashed: mAP)',
        xlim=(0, 100))
    ax_ap.legend(loc='upper left', fontsize='small')
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig, summaries


def main():
    args = parse_args()
    features = args.query is not None or args.gallery is not None
    if features and (args.query is None or args.gallery is None):
        raise SystemExit('--query and --gallery go together')
    if features == bool(args.dumps):
        raise SystemExit('give metric dumps or --query/--gallery features '
                         '(one of the two)')
    if args.max_rank < 1 or args.bins < 1:
        raise SystemExit('--max-rank and --bins must be >= 1')
    if features:
        evaluations = [
            from_features(args.query, args.gallery, args.dist_metric,
                          not args.no_feat_norm, not args.gallery_only)
        ]
        names = [osp.splitext(osp.basename(args.query))[0]]
    else:
        evaluations = [from_dump(path) for path in args.dumps]
        names = [osp.splitext(osp.basename(path))[0] for path in args.dumps]
    labels = args.labels or names
    if len(labels) != len(evaluations):
        raise SystemExit(f'{len(labels)} labels for {len(evaluations)} '
                         'evaluations')
    fig, summaries = plot(evaluations, labels, args.max_rank, args.bins,
                          args.title)
    mkdir_or_exist(osp.dirname(osp.abspath(args.out)))
    fig.savefig(args.out, dpi=120)
    fig.clf()
    for summary in summaries:
        print(f'{summary["label"]}: mAP {summary["mAP"]:.2f}, rank-1 '
              f'{summary["rank1"]:.2f}, mINP {summary["mINP"]:.2f}')
    print(f'written to {args.out}')


if __name__ == '__main__':
    main()
