# Copyright (c) mmtfclip contributors. All rights reserved.
"""Curves and iteration times from mmengine's json logs.

A training run writes ``<work_dir>/<timestamp>/vis_data/<timestamp>.json``
(and ``scalars.json``): one json dict per line. Training lines carry
``epoch``, ``iter`` (counted over the whole run), ``lr`` and the losses;
validation lines carry the metrics (``reid/mAP``, ``reid/rank1``, ...) with
``step`` = the epoch. Training keys are drawn against the iteration,
validation keys against the epoch.

Examples::

    .venv/bin/python tools/analysis_tools/analyze_logs.py plot_curve \\
        work_dirs/tfclip_mars/*/vis_data/scalars.json \\
        --keys loss reid/mAP lr --out curves.png
    .venv/bin/python tools/analysis_tools/analyze_logs.py cal_train_time \\
        work_dirs/tfclip_mars/*/vis_data/scalars.json
"""
import argparse
import json
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np


def load_json_log(path: str) -> Tuple[List[dict], List[dict]]:
    """Read an mmengine json log.

    Args:
        path (str): The ``.json`` log, one json dict per line.

    Returns:
        tuple[list[dict], list[dict]]: The training lines (those with
        ``epoch`` and ``iter``) and the other lines (validation).

    Raises:
        ValueError: Naming the file and line of a line that is not a json
            dict, or when the log has no line at all.
    """
    train, val = [], []
    with open(path, encoding='utf-8') as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f'{path}, line {number}: not valid json '
                                 f'({e.msg}): {line.strip()[:80]!r}') from e
            if not isinstance(record, dict):
                raise ValueError(f'{path}, line {number}: expected a json '
                                 f'dict, got {type(record).__name__}.')
            (train
             if 'epoch' in record and 'iter' in record else val).append(record)
    if not train and not val:
        raise ValueError(f'{path} holds no log line.')
    return train, val


def _keys(records: List[dict]) -> List[str]:
    return sorted({k for r in records for k in r})


def curve(path: str, train: List[dict], val: List[dict],
          key: str) -> Tuple[np.ndarray, np.ndarray, str]:
    """The values of ``key`` and the x axis they are drawn against.

    Args:
        path (str): The log, for the error message.
        train (list[dict]): Its training lines.
        val (list[dict]): Its validation lines.
        key (str): A logged key, e.g. ``'loss'``, ``'lr'``, ``'reid/mAP'``.

    Returns:
        tuple: x values, y values, and the x axis name (``'iter'`` for
        training keys, ``'epoch'`` for validation keys).

    Raises:
        KeyError: If no line of the log has ``key``, listing the keys
            present.
    """
    # Training lines first: `time` and `data_time` are in both.
    for records, x_key, x_name in ((train, 'iter', 'iter'), (val, 'step',
                                                             'epoch')):
        points = [(r[x_key], r[key]) for r in records if key in r]
        if points:
            x, y = zip(*points)
            return np.asarray(x), np.asarray(y, dtype=float), x_name
    raise KeyError(f'{key!r} is in no line of {path}; training lines have '
                   f'{_keys(train)}, validation lines have {_keys(val)}.')


def plot_curve(logs: Sequence[Tuple[str, List[dict], List[dict]]],
               keys: Sequence[str],
               out: str,
               legend: Optional[Sequence[str]] = None,
               title: Optional[str] = None) -> None:
    """Draw one panel per key, one line per log, to a picture.

    Args:
        logs (Sequence[tuple]): ``(path, train lines, val lines)`` of
            each log.
        keys (Sequence[str]): The keys to draw.
        out (str): The picture file (``.png``, ``.pdf``, ...).
        legend (Sequence[str], optional): One name per log. Defaults to the
            log files' names.
        title (str, optional): Title of the figure. Defaults to None.
    """
    # A file backend: the tool also runs on machines without a display.
    import matplotlib
    matplotlib.use('Agg')
    import matplotlib.pyplot as plt

    legend = list(legend or [osp.basename(log[0]) for log in logs])
    if len(legend) != len(logs):
        raise ValueError(f'--legend gives {len(legend)} names for '
                         f'{len(logs)} logs.')
    curves = [[curve(*log, key) for log in logs] for key in keys]
    fig, axes = plt.subplots(
        len(keys), 1, figsize=(8, 3 * len(keys)), squeeze=False)
    for ax, key, per_log in zip(axes[:, 0], keys, curves):
        for name, (x, y, x_name) in zip(legend, per_log):
            ax.plot(
                x, y, marker='o' if x_name == 'epoch' else None, label=name)
            ax.set_xlabel(x_name)
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
        ax.legend()
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(out, dpi=100)
    plt.close(fig)


def train_time(path: str,
               train: List[dict],
               include_outliers: bool = False) -> dict:
    """Iteration times of a training log, per epoch.

    Args:
        path (str): The log, for the error message.
        train (list[dict]): The training lines (with ``time``).
        include_outliers (bool): Keep the first logged iteration of each
            epoch, slowed by the data loader's start. Defaults to False.

    Returns:
        dict: ``epoch_times`` (mean seconds per iteration of each epoch,
        keyed by epoch), ``mean`` (over all kept iterations), ``slowest``
        and ``fastest`` epoch, ``std`` over the epochs' means.
    """
    per_epoch: Dict[int, List[float]] = {}
    for record in train:
        if 'time' in record:
            per_epoch.setdefault(record['epoch'], []).append(record['time'])
    if not per_epoch:
        raise KeyError(f'{path} has no training line with `time`.')
    if not include_outliers:
        per_epoch = {
            e: t[1:] if len(t) > 1 else t
            for e, t in per_epoch.items()
        }
    means = {e: float(np.mean(t)) for e, t in per_epoch.items()}
    return dict(
        epoch_times=means,
        mean=float(np.mean([x for t in per_epoch.values() for x in t])),
        slowest=max(means, key=means.get),
        fastest=min(means, key=means.get),
        std=float(np.std(list(means.values()))))


def parse_args():
    parser = argparse.ArgumentParser(description='Analyse json logs')
    sub = parser.add_subparsers(dest='task', required=True)
    plot = sub.add_parser('plot_curve', help='draw curves of logged keys')
    plot.add_argument('json_logs', nargs='+', help='json logs')
    plot.add_argument(
        '--keys',
        nargs='+',
        default=['loss'],
        help='keys to draw, e.g. loss lr reid/mAP (default: loss)')
    plot.add_argument('--legend', nargs='+', help='one name per log')
    plot.add_argument('--title', help='title of the figure')
    plot.add_argument(
        '--out', required=True, help='picture file, e.g. curves.png')
    timing = sub.add_parser(
        'cal_train_time', help='seconds per training iteration')
    timing.add_argument('json_logs', nargs='+', help='json logs')
    timing.add_argument(
        '--include-outliers',
        action='store_true',
        help='keep the first iteration of each epoch')
    return parser.parse_args()


def main():
    args = parse_args()
    logs = [(path, *load_json_log(path)) for path in args.json_logs]
    if args.task == 'plot_curve':
        plot_curve(logs, args.keys, args.out, args.legend, args.title)
        print(f'{", ".join(args.keys)} of {len(logs)} log(s) drawn to '
              f'{args.out}')
        return
    for path, train, _ in logs:
        times = train_time(path, train, args.include_outliers)
        print(f'{path}:')
        print(f'  slowest epoch {times["slowest"]}, '
              f'{times["epoch_times"][times["slowest"]]:.4f} s/iter')
        print(f'  fastest epoch {times["fastest"]}, '
              f'{times["epoch_times"][times["fastest"]]:.4f} s/iter')
        print(f'  std of the epochs\' means: {times["std"]:.4f} s')
        print(f'  average iteration time: {times["mean"]:.4f} s/iter')


if __name__ == '__main__':
    main()
