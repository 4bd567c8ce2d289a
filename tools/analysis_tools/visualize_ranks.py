# Copyright (c) mmtfclip contributors. All rights reserved.
"""Draw ranking pictures from a test result dumped by ``tools/test.py
--dump``: each query with its top-k gallery tracklets, true matches in
green, wrong ones in red, ranked as the evaluation ranked them (its
distances, its protocol, same-id same-camera entries discarded), the
query's AP in its header; queries evenly spaced, or worst / best first."""
import argparse
import os.path as osp
import zipfile

import numpy as np

from mmtfclip.fileio import UnsafeFileError
from mmtfclip.visualization import ReIDRankingVisualizer


def parse_args():
    parser = argparse.ArgumentParser(
        description='Draw ranking pictures from a dumped test result')
    parser.add_argument('dump', help='.npz written by tools/test.py --dump')
    parser.add_argument(
        '--out-dir', required=True, help='folder of the pictures')
    parser.add_argument(
        '--topk', type=int, default=10, help='gallery tracklets per query')
    parser.add_argument(
        '--num',
        type=int,
        default=20,
        help='queries drawn, chosen by --order (without --queries)')
    parser.add_argument(
        '--order',
        choices=('even', 'worst', 'best'),
        default='even',
        help='even: spread over the query set; worst / best: lowest / '
        'highest AP first')
    parser.add_argument(
        '--queries',
        type=int,
        nargs='+',
        help='0-based positions of the queries to draw, in query order')
    parser.add_argument(
        '--num-frames', type=int, default=4, help='frames per tracklet')
    parser.add_argument(
        '--layout',
        choices=('grid', 'row'),
        default='grid',
        help='grid: the query above rows of --columns results; row: the '
        'query and its results in one row (torchreid\'s visrank)')
    parser.add_argument(
        '--columns',
        type=int,
        default=5,
        help='results per row of the grid layout')
    return parser.parse_args()


def read_dump(path: str) -> dict:
    """The arrays of a ``tools/test.py --dump`` file, read without pickle.

    Raises:
        UnsafeFileError: If the file is not a readable ``.npz`` of plain
            arrays (an object array would need pickle: it is refused, not
            unpickled); the message names the file.
    """
    if not osp.isfile(path):
        raise FileNotFoundError(f'The dump {path} does not exist.')
    try:
        with np.load(path, allow_pickle=False) as data:
            return dict(data)
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as e:
        raise UnsafeFileError(
            f'The dump {path} is not a readable .npz of plain arrays (it is '
            'read without pickle, so object arrays are refused): '
            f'{type(e).__name__}: {e}') from e


def main():
    args = parse_args()
    dump = read_dump(args.dump)
    visualizer = ReIDRankingVisualizer(
        name='visualize_ranks',
        num_frames=args.num_frames,
        layout=args.layout,
        columns=args.columns)
    files = visualizer.visualize_dump_rankings(dump, args.out_dir, args.topk,
                                               args.num, args.queries,
                                               args.order)
    print(f'{len(files)} ranking pictures written to {args.out_dir}')


if __name__ == '__main__':
    main()
