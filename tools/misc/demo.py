# Copyright (c) mmtfclip contributors. All rights reserved.
"""The embedded demo behind ``make demo``.

1. Writes the synthetic MARS-layout dataset to ``data/synthetic_mars`` if it
   is not there yet.
2. Trains ``configs/tfclip_demo.py`` (the full TF-CLIP method on a small,
   randomly initialised CLIP) on the CPU, evaluating before and after
   training (dense clips, MARS protocol).
3. Prints mAP and rank-1 both times and writes a ranking picture.

The console shows a few progress lines and the summary; the full log is in
the work dir (``<timestamp>/<timestamp>.log``).
"""
import argparse
import logging
import os
import os.path as osp
import sys
import time
import warnings

import mmcv
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.hooks import Hook

from mmtfclip.registry import RUNNERS
from mmtfclip.utils import set_data_root
from mmtfclip.utils.synthetic import make_synthetic_mars
from mmtfclip.visualization import ReIDRankingVisualizer

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def parse_args():
    parser = argparse.ArgumentParser(description='Run the mmtfclip demo')
    parser.add_argument(
        '--config', default=osp.join(ROOT, 'configs', 'tfclip_demo.py'))
    parser.add_argument(
        '--data-root', default=osp.join(ROOT, 'data', 'synthetic_mars'))
    parser.add_argument(
        '--work-dir', default=osp.join(ROOT, 'work_dirs', 'tfclip_demo'))
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the demo config')
    parser.add_argument(
        '--num-queries',
        type=int,
        default=3,
        help='queries drawn in the ranking picture')
    return parser.parse_args()


class _Progress(Hook):
    """A console line before training and every ``interval`` epochs."""

    def __init__(self, console, interval: int = 10) -> None:
        self.console = console
        self.interval = interval
        self.start = time.perf_counter()

    def before_train_epoch(self, runner) -> None:
        if runner.epoch == 0:
            print(
                f'training {runner.max_epochs} epochs; the full log is in '
                f'{osp.relpath(runner.log_dir)}',
                file=self.console,
                flush=True)

    def after_train_epoch(self, runner) -> None:
        epoch = runner.epoch + 1
        if epoch % self.interval and epoch != runner.max_epochs:
            return
        loss = runner.message_hub.get_scalar('train/loss').mean(
            len(runner.train_dataloader))
        print(
            f'  epoch {epoch:3d}/{runner.max_epochs}  loss {loss:.3f}  '
            f'{time.perf_counter() - self.start:5.0f} s',
            file=self.console,
            flush=True)


def main():
    args = parse_args()
    start = time.perf_counter()
    if not osp.isfile(osp.join(args.data_root, 'info', 'query_IDX.mat')):
        make_synthetic_mars(args.data_root)

    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    set_data_root(cfg, args.data_root)
    cfg.work_dir = args.work_dir
    dump_path = osp.join(args.work_dir, 'test_results.npz')
    cfg.val_evaluator['dump_path'] = dump_path

    # The runner's log (environment, config, every iteration, warnings)
    # goes to its file in the work dir; the console shows errors, the
    # progress lines and the summary.
    warnings.filterwarnings('ignore', module='mmcv')
    warnings.filterwarnings('ignore', message='This DataLoader will create')
    sys.stdout.flush()
    console = os.fdopen(os.dup(sys.stdout.fileno()), 'w')
    # Everything else that writes to stdout (progress bars bound to it at
    # import) goes nowhere while the run lasts.
    with open(os.devnull, 'w') as devnull:
        saved = os.dup(sys.stdout.fileno())
        os.dup2(devnull.fileno(), sys.stdout.fileno())
        try:
            runner = RUNNERS.build(cfg)
            for handler in runner.logger.handlers:
                if type(handler) is logging.StreamHandler:
                    handler.setStream(console)
                    handler.setLevel(logging.ERROR)
            runner.register_hook(_Progress(console), priority='LOWEST')
            runner.train()
        finally:
            sys.stdout.flush()
            os.dup2(saved, sys.stdout.fileno())
            os.close(saved)
    hub = runner.message_hub
    before = hub.get_info('metrics_before_train')
    # The config validates after the last epoch; the message hub keeps the
    # latest value of each metric.
    after = {
        key: hub.get_scalar(f'val/{key}').current()
        for key in ('reid/mAP', 'reid/rank1')
    }

    dump = dict(np.load(dump_path))
    visualizer = ReIDRankingVisualizer(
        name='mmtfclip_demo', frame_size=(96, 48))
    pictures = [
        visualizer.visualize_dump(dump, i, topk=5)
        for i in np.linspace(0,
                             len(dump['query_index']) -
                             1, args.num_queries).astype(int)
    ]
    # One query per row, each with its top-5 gallery tracklets beside it
    # (the visualizer's grid of 5 columns), rows of one width.
    sep = np.full((16, pictures[0].shape[1], 3), 255, np.uint8)
    tiles = [tile for p in pictures for tile in (p, sep)][:-1]
    picture = osp.join(args.work_dir, 'ranking.png')
    mmcv.imwrite(mmcv.rgb2bgr(np.concatenate(tiles, axis=0)), picture)

    minutes = (time.perf_counter() - start) / 60
    method = dict(
        TFCLIP='TF-CLIP', CLIPReID='CLIP-ReID').get(cfg.model.type,
                                                    cfg.model.type)
    print(f'\nmmtfclip demo: {method} (small random-init CLIP) on synthetic '
          'MARS-layout data, dense test, MARS protocol')
    print(f'  before training: mAP {before["reid/mAP"]:5.1f} %  '
          f'rank-1 {before["reid/rank1"]:5.1f} %')
    print(f'  after training:  mAP {after["reid/mAP"]:5.1f} %  '
          f'rank-1 {after["reid/rank1"]:5.1f} %')
    print(f'  ranking picture: {os.path.relpath(picture)}')
    print(f'  total time: {minutes:.1f} min')


if __name__ == '__main__':
    main()
