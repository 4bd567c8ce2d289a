# Copyright (c) mmtfclip contributors. All rights reserved.
"""Write a synthetic video ReID dataset in the MARS layout.

Example::

    python tools/misc/make_synthetic_dataset.py data/synthetic_mars

The result is read by the ``MARS`` dataset class
(``configs/_base_/datasets/synthetic_mars.py``); see
:func:`mmtfclip.utils.make_synthetic_mars` for what it contains.
"""
import argparse
import time

from mmengine.logging import print_log

from mmtfclip.utils.synthetic import make_synthetic_mars


def parse_args():
    parser = argparse.ArgumentParser(
        description='Write a synthetic dataset in the MARS layout')
    parser.add_argument('out_dir', help='output folder')
    parser.add_argument(
        '--num-ids',
        type=int,
        default=64,
        help='persons in total, training and test (default: 64)')
    parser.add_argument(
        '--num-test-ids',
        type=int,
        help='persons of the test set (default: half of --num-ids, at most '
        '16)')
    parser.add_argument(
        '--num-cams', type=int, default=3, help='cameras, 2..9 (default: 3)')
    parser.add_argument(
        '--tracklets-per-id',
        type=int,
        default=2,
        help='tracklets of each person in each camera (default: 2)')
    parser.add_argument(
        '--min-frames',
        type=int,
        default=8,
        help='fewest frames per tracklet (default: 8)')
    parser.add_argument(
        '--max-frames',
        type=int,
        default=16,
        help='most frames per tracklet (default: 16)')
    parser.add_argument(
        '--seed', type=int, default=0, help='random seed (default: 0)')
    return parser.parse_args()


def main():
    args = parse_args()
    start = time.time()
    counts = make_synthetic_mars(
        args.out_dir,
        num_ids=args.num_ids,
        num_cams=args.num_cams,
        tracklets_per_id=args.tracklets_per_id,
        min_frames=args.min_frames,
        max_frames=args.max_frames,
        seed=args.seed,
        num_test_ids=args.num_test_ids)
    summary = ', '.join(f'{k}={v}' for k, v in counts.items())
    print_log(
        f'Wrote {args.out_dir} in {time.time() - start:.1f}s: {summary}',
        logger='current')


if __name__ == '__main__':
    main()
