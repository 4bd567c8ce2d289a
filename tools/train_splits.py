# Copyright (c) mmtfclip contributors. All rights reserved.
"""Train and test on each of the 10 splits of iLIDS-VID or PRID-2011.

The published protocol reports the mean over 10 random train/test splits;
this tool runs them one after the other (each in its own work directory,
resumable by re-running the tool) and prints mean +- std of every metric.

Example::

    python tools/train_splits.py configs/tfclip_ilidsvid.py --splits 0 1 2
"""
import argparse
import json
import os
import os.path as osp

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.runner import Runner

from mmtfclip.registry import RUNNERS
from mmtfclip.utils import replace_key, set_data_root


def parse_args():
    parser = argparse.ArgumentParser(
        description='Train and test a config on several dataset splits')
    parser.add_argument('config', help='config of a dataset with `split_id`')
    parser.add_argument(
        '--splits',
        type=int,
        nargs='+',
        default=list(range(10)),
        help='split ids to run (default: 0..9)')
    parser.add_argument('--work-dir', help='parent of the per-split dirs')
    parser.add_argument(
        '--data-root',
        help='dataset folder: sets the data_root of every dataset of the '
        'config')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config')
    parser.add_argument(
        '--launcher',
        choices=['none', 'pytorch', 'slurm', 'mpi'],
        default='none',
        help='job launcher')
    parser.add_argument('--local_rank', '--local-rank', type=int, default=0)
    args = parser.parse_args()
    if 'LOCAL_RANK' not in os.environ:
        os.environ['LOCAL_RANK'] = str(args.local_rank)
    return args


def summarize(results: dict) -> dict:
    """Mean and standard deviation of each metric over the splits."""
    names = sorted(set().union(*(r.keys() for r in results.values())))
    summary = {}
    for name in names:
        values = np.array([r[name] for r in results.values() if name in r])
        summary[name] = dict(
            mean=float(values.mean()),
            std=float(values.std()),
            n=int(values.size))
    return summary


def main():
    args = parse_args()
    base_cfg = Config.fromfile(args.config)
    if args.data_root is not None:
        set_data_root(base_cfg, args.data_root)
    if args.cfg_options is not None:
        base_cfg.merge_from_dict(args.cfg_options)
    work_root = args.work_dir or osp.join(
        './work_dirs',
        osp.splitext(osp.basename(args.config))[0] + '_splits')

    results = {}
    for split_id in args.splits:
        cfg = base_cfg.copy()
        changed = replace_key(cfg._cfg_dict, 'split_id', split_id)
        if changed == 0:
            raise ValueError(
                f'{args.config} has no dataset with a `split_id` key; this '
                'tool is for iLIDS-VID and PRID-2011 style datasets.')
        cfg.work_dir = osp.join(work_root, f'split_{split_id}')
        # Re-running the tool continues an interrupted split.
        cfg.resume = osp.isfile(osp.join(cfg.work_dir, 'last_checkpoint'))
        cfg.launcher = args.launcher
        if 'runner_type' not in cfg:
            runner = Runner.from_cfg(cfg)
        else:
            runner = RUNNERS.build(cfg)
        runner.train()
        results[split_id] = runner.test()
        print_log(f'split {split_id}: {results[split_id]}', logger='current')

    summary = summarize(results)
    lines = [f'{"metric":<10} mean +- std over {len(results)} splits']
    for name, s in summary.items():
        lines.append(f'{name:<10} {s["mean"]:.2f} +- {s["std"]:.2f}')
    print_log('\n'.join(lines), logger='current')
    os.makedirs(work_root, exist_ok=True)
    with open(osp.join(work_root, 'splits_summary.json'), 'w') as f:
        json.dump(
            dict(
                per_split={
                    str(k): v
                    for k, v in results.items()
                },
                summary=summary),
            f,
            indent=2)


if __name__ == '__main__':
    main()
