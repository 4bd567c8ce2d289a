# Copyright (c) mmtfclip contributors. All rights reserved.
"""Embed every tracklet of one dataset split and save the result as .npz.

The split's dataset is the one the config defines (``test_dataloader`` for
the query and the gallery, ``train_dataloader`` for the training set), run
through the config's test pipeline and the model's test mode (dense clips
averaged), as ``tools/test.py`` does. The training split gets the test
pipeline too: no flip, no erasing.

The ``.npz`` loads without pickle and holds, one row per tracklet in
dataset order: ``features`` ``[N, D]`` (float32, the model's embedding as
it comes, not L2-normalised), ``pids``, ``camids`` (0-based),
``tracklet_ids``, and the tracklets' frames: ``frame_paths`` (all of them,
concatenated) with ``frame_path_offsets`` ``[N + 1]`` (tracklet ``i`` is
``frame_paths[offsets[i]:offsets[i + 1]]``), as ``tools/test.py --dump``
writes them; ``split`` names the split.

Example::

    python tools/analysis_tools/extract_features.py \\
        configs/tfclip_mars.py work_dirs/tfclip_mars/epoch_80.pth \\
        --split query --out work_dirs/tfclip_mars/query_feats.npz
"""
import argparse
import copy
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config, ConfigDict, DictAction
from mmengine.dataset import pseudo_collate
from mmengine.logging import print_log
from mmengine.utils import ProgressBar, mkdir_or_exist
from torch.utils.data import DataLoader

from mmtfclip.apis import get_test_pipeline, init_model
from mmtfclip.evaluation import pack_frame_paths
from mmtfclip.registry import DATASETS
from mmtfclip.utils import replace_key


def parse_args():
    parser = argparse.ArgumentParser(
        description='Embed the tracklets of a dataset split to .npz')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument(
        '--split',
        choices=['query', 'gallery', 'train'],
        required=True,
        help='the dataset split to embed')
    parser.add_argument('--out', required=True, help='output .npz file')
    parser.add_argument(
        '--data-root', help='override the data root of every dataset')
    parser.add_argument(
        '--batch-size',
        type=int,
        help='tracklets per batch (default: the test data loader\'s)')
    parser.add_argument(
        '--num-workers', type=int, default=0, help='data loader workers')
    parser.add_argument(
        '--device', default='cpu', help='device of the model, e.g. cuda:0')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config')
    return parser.parse_args()


def find_split_dataset(node, split: str):
    """The first dataset config below ``node`` with ``split=split``."""
    if isinstance(node, dict):
        if node.get('split') == split and 'type' in node:
            return node
        children = node.values()
    elif isinstance(node, (list, tuple)):
        children = node
    else:
        return None
    for child in children:
        found = find_split_dataset(child, split)
        if found is not None:
            return found
    return None


def split_dataset_cfg(cfg: Config, split: str) -> ConfigDict:
    """The config of ``split``'s dataset, with the test pipeline.

    Args:
        cfg (Config): The full config.
        split (str): ``'query'``, ``'gallery'`` or ``'train'``.

    Returns:
        ConfigDict: A dataset config to build with ``DATASETS``.
    """
    source = 'train_dataloader' if split == 'train' else 'test_dataloader'
    dataset = find_split_dataset(cfg.get(source) or {}, split)
    if dataset is None:
        raise KeyError(f'{cfg.filename}: no dataset with split={split!r} '
                       f'under {source}.')
    dataset = copy.deepcopy(dataset)
    dataset['pipeline'] = get_test_pipeline(cfg)
    dataset['test_mode'] = True
    return dataset


def main():
    args = parse_args()
    if not args.out.endswith('.npz'):
        raise ValueError(f'--out must end with .npz, got {args.out}')
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root is not None:
        replace_key(cfg._cfg_dict, 'data_root', args.data_root)
    model = init_model(cfg, args.checkpoint, device=args.device)

    dataset = DATASETS.build(split_dataset_cfg(cfg, args.split))
    batch_size = args.batch_size or cfg.get('test_dataloader', {}).get(
        'batch_size', 1)
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=False,
        num_workers=args.num_workers,
        collate_fn=pseudo_collate)

    features, pids, camids, tracklet_ids = [], [], [], []
    progress = ProgressBar(len(dataset))
    with torch.no_grad():
        for batch in loader:
            for sample in model.test_step(batch):
                features.append(sample.pred_feature.float().cpu())
                pids.append(int(sample.gt_label.reshape(-1)[0]))
                camids.append(int(sample.camid))
                tracklet_ids.append(int(sample.tracklet_id))
                progress.update()

    # The tracklets' frames from the dataset (the loader keeps its order):
    # the packed samples carry only the sampled, possibly repeated, ones.
    frames = [
        dataset.get_data_info(i)['frame_paths'] for i in range(len(dataset))
    ]
    mkdir_or_exist(osp.dirname(osp.abspath(args.out)))
    np.savez(
        args.out,
        features=torch.stack(features).numpy(),
        pids=np.array(pids, dtype=np.int64),
        camids=np.array(camids, dtype=np.int64),
        tracklet_ids=np.array(tracklet_ids, dtype=np.int64),
        split=np.array(args.split),
        **pack_frame_paths(frames))
    print_log(
        f'\n{len(features)} {args.split} tracklets embedded '
        f'({features[0].numel()}-d) to {args.out}',
        logger='current')


if __name__ == '__main__':
    main()
