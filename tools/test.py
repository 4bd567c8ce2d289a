# Copyright (c) mmtfclip contributors. All rights reserved.
import argparse
import os
import os.path as osp

import numpy as np
from mmengine.config import Config, DictAction
from mmengine.dist import is_main_process
from mmengine.runner import Runner

from mmtfclip.registry import RUNNERS
from mmtfclip.utils import set_data_root
from mmtfclip.utils.launch import amp_dtype
from mmtfclip.visualization import ReIDRankingVisualizer


def parse_args():
    parser = argparse.ArgumentParser(
        description='Evaluate a video ReID checkpoint')
    parser.add_argument('config', help='test config file path')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--work-dir',
        help='the directory to save the file containing evaluation metrics')
    parser.add_argument(
        '--data-root',
        help='dataset folder: sets the data_root of every dataset of the '
        'config')
    parser.add_argument(
        '--dump',
        type=str,
        help='dump the features, pids, cameras and distances of the test set '
        'to this .npz file (the metric\'s `dump_path`)')
    parser.add_argument(
        '--show-dir',
        help='draw the ranking pictures of --show-num queries into this '
        'folder, from the metric\'s distances and protocol (uses --dump, or '
        'writes DIR/test_results.npz)')
    parser.add_argument(
        '--show-topk',
        type=int,
        default=10,
        help='gallery tracklets per ranking picture')
    parser.add_argument(
        '--show-num',
        type=int,
        default=20,
        help='queries drawn, evenly spaced over the query set')
    parser.add_argument(
        '--amp',
        action='store_true',
        help='run the test in mixed precision (bf16 where supported)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config, e.g. '
        'test_evaluator.rerank=True')
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


def merge_args(cfg, args):
    """Merge the command-line arguments into the config."""
    if args.work_dir is not None:
        cfg.work_dir = args.work_dir
    elif cfg.get('work_dir', None) is None:
        cfg.work_dir = osp.join('./work_dirs',
                                osp.splitext(osp.basename(args.config))[0])
    cfg.load_from = args.checkpoint

    if args.amp:
        # mmengine's TestLoop autocasts to fp16 with `fp16=True`; checking
        # the dtype first gives a clear error on machines without a GPU.
        amp_dtype()
        cfg.test_cfg = cfg.get('test_cfg') or dict(type='TestLoop')
        cfg.test_cfg.fp16 = True

    if args.show_dir is not None and args.dump is None:
        # The pictures are drawn from the metric's dump, so that they show
        # exactly the ranking that was evaluated.
        args.dump = osp.join(args.show_dir, 'test_results.npz')
    if args.dump is not None:
        if not args.dump.endswith('.npz'):
            raise ValueError(f'--dump must end with .npz, got {args.dump}')
        evaluators = cfg.test_evaluator if isinstance(
            cfg.test_evaluator, list) else [cfg.test_evaluator]
        metrics = [e for e in evaluators if e.get('type') == 'ReIDMetric']
        if not metrics:
            raise ValueError('--dump and --show-dir need a ReIDMetric in '
                             'test_evaluator.')
        for evaluator in metrics:
            evaluator['dump_path'] = args.dump

    if args.data_root is not None:
        set_data_root(cfg, args.data_root)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    # The runner (runner_type) sets up the run and checks that the
    # checkpoint fits the config before testing it.
    cfg.launcher = args.launcher
    return cfg


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    cfg = merge_args(cfg, args)

    if 'runner_type' not in cfg:
        runner = Runner.from_cfg(cfg)
    else:
        runner = RUNNERS.build(cfg)
    runner.test()

    if args.show_dir is not None and is_main_process():
        visualizer = ReIDRankingVisualizer(name='test_rankings')
        files = visualizer.visualize_dump_rankings(
            dict(np.load(args.dump)),
            args.show_dir,
            topk=args.show_topk,
            num=args.show_num)
        runner.logger.info(
            f'{len(files)} ranking pictures written to {args.show_dir}')


if __name__ == '__main__':
    main()
