# Copyright (c) mmtfclip contributors. All rights reserved.
"""Draw sequences as the model sees them, after the data pipeline.

The pipeline of the chosen phase's data loader runs up to, not including,
``PackTrackletInputs``: the pictures show the uint8 frames after sampling,
resizing, flipping and random erasing. Each sequence becomes one strip of
its frames, in input order, with the identity, the camera (1-based, as in
the ranking pictures and the datasets' file names), the tracklet and the
augmentations written above.

Example::

    python tools/analysis_tools/browse_dataset.py configs/tfclip_mars.py \\
        --out-dir work_dirs/browse --num 8
"""
import argparse
import os.path as osp

import cv2
import mmcv
import numpy as np
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope
from mmengine.runner import set_random_seed
from mmengine.utils import mkdir_or_exist

from mmtfclip.registry import DATASETS
from mmtfclip.utils import replace_key


def parse_args():
    parser = argparse.ArgumentParser(
        description='Draw sampled sequences after the data pipeline')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--out-dir', required=True, help='folder of the pictures')
    parser.add_argument(
        '--num', type=int, default=8, help='sequences drawn (default: 8)')
    parser.add_argument(
        '--phase',
        choices=['train', 'val', 'test'],
        default='train',
        help='whose data loader and pipeline (default: train)')
    parser.add_argument(
        '--scale',
        type=float,
        default=1.0,
        help='resize the shown frames by this factor')
    parser.add_argument(
        '--seed',
        type=int,
        default=0,
        help='seed of the choice and the '
        'augmentations')
    parser.add_argument(
        '--data-root', help='override the data root of every dataset')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config')
    return parser.parse_args()


def drop_packing(node) -> int:
    """Cut every pipeline below ``node`` before ``PackTrackletInputs``.

    Args:
        node: A config node (dict, list or leaf), changed in place.

    Returns:
        int: How many pipelines were cut.
    """
    count = 0
    if isinstance(node, dict):
        pipeline = node.get('pipeline')
        if isinstance(pipeline, list):
            types = [str(t.get('type', '')).split('.')[-1] for t in pipeline]
            if 'PackTrackletInputs' in types:
                node['pipeline'] = pipeline[:types.index('PackTrackletInputs')]
                count += 1
        for child in node.values():
            count += drop_packing(child)
    elif isinstance(node, (list, tuple)):
        for child in node:
            count += drop_packing(child)
    return count


def sequence_strip(results: dict, scale: float = 1.0) -> np.ndarray:
    """One sequence's frames side by side under a line of text.

    Args:
        results (dict): The pipeline's output: ``imgs`` (uint8 RGB frames
            ``[T, H, W, 3]`` or a list of them), ``pid``, ``camid``,
            ``tracklet_id`` and the augmentation keys when present.
        scale (float): Resize factor of the frames. Defaults to 1.0.

    Returns:
        np.ndarray: The picture, RGB uint8.
    """
    frames = [np.asarray(f) for f in results['imgs']]
    if scale != 1.0:
        frames = [mmcv.imrescale(f, scale) for f in frames]
    gap = np.full((frames[0].shape[0], 2, 3), 255, np.uint8)
    strip = np.concatenate([x for f in frames for x in (f, gap)][:-1], axis=1)
    words = [
        f'pid {results["pid"]}', f'cam {results["camid"] + 1}',
        f'tracklet {results.get("tracklet_id")}', f'{len(frames)} frames'
    ]
    if results.get('flip'):
        words.append('flipped')
    if results.get('erased_boxes'):
        words.append(f'{len(results["erased_boxes"])} erased')
    text = '  '.join(words)
    # Wide enough for the text even when the frames are small.
    width = max(strip.shape[1], 7 * len(text) + 6)
    picture = np.full((20 + strip.shape[0], width, 3), 255, np.uint8)
    picture[20:, :strip.shape[1]] = strip
    cv2.putText(picture, text, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                (0, 0, 0), 1, cv2.LINE_AA)
    return picture


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root is not None:
        replace_key(cfg._cfg_dict, 'data_root', args.data_root)
    init_default_scope(cfg.get('default_scope', 'mmtfclip'))
    loader = f'{args.phase}_dataloader'
    if cfg.get(loader) is None:
        raise KeyError(f'{args.config} has no {loader}.')
    dataset_cfg = cfg[loader]['dataset']
    if not drop_packing(dataset_cfg):
        raise KeyError(f'{args.config}: no pipeline under {loader}.dataset '
                       'ends with PackTrackletInputs.')
    set_random_seed(args.seed)
    dataset = DATASETS.build(dataset_cfg)
    rng = np.random.default_rng(args.seed)
    chosen = sorted(
        rng.choice(len(dataset), min(args.num, len(dataset)), replace=False))
    mkdir_or_exist(args.out_dir)
    for index in chosen:
        results = dataset[int(index)]
        name = (f'{args.phase}_{index:06d}_pid{results["pid"]}_'
                f'cam{results["camid"] + 1}.png')
        mmcv.imwrite(
            mmcv.rgb2bgr(sequence_strip(results, args.scale)),
            osp.join(args.out_dir, name))
    print(f'{len(chosen)} {args.phase} sequences drawn to {args.out_dir}')


if __name__ == '__main__':
    main()
