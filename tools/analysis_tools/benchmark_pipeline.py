# Copyright (c) mmtfclip contributors. All rights reserved.
"""Frames per second of a config's training and test pipelines.

Each pipeline runs on the config's datasets in this process (one thread,
like one data-loader worker); for comparison, a PIL + torchvision pipeline
doing the same work on the same frames runs in the same process: decode,
resize to the input size when needed, one flip decision per tracklet,
per-frame random erasing (training only), conversion to a normalised float
tensor. The PIL pipeline decodes a frame each time it is sampled; ours
decodes a frame sampled twice (the padding of the last dense clip, short
tracklets) once.

Our pipelines end with uint8 frames; the data preprocessor normalises whole
batches on the model's device. Two figures are printed for them: the
pipeline alone (the data-loader worker's work when training on a GPU), and
the pipeline followed by the config's data preprocessor (by default
``TrackletDataPreprocessor``) on the CPU, one sample per batch (the work of
a CPU-only run).

Example::

    python tools/misc/make_synthetic_dataset.py data/synthetic_mars
    python tools/analysis_tools/benchmark_pipeline.py \\
        configs/_base_/datasets/synthetic_mars.py --num-samples 200
"""
import argparse
import platform
import random
import time
from typing import Callable, List, Optional, Tuple

import cv2
import numpy as np
import torch
import torchvision.transforms.functional as TF
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.registry import init_default_scope
from PIL import Image

from mmtfclip.registry import DATASETS, MODELS
from mmtfclip.utils import replace_key

# ImageNet mean/std (0-1 range), as the data preprocessor's defaults.
MEAN = (0.485, 0.456, 0.406)
STD = (0.229, 0.224, 0.225)


def parse_args():
    parser = argparse.ArgumentParser(
        description='Frames per second of the training and test pipelines')
    parser.add_argument('config', help='config with train and test loaders')
    parser.add_argument(
        '--data-root', help='override the data root of every dataset')
    parser.add_argument(
        '--num-samples',
        type=int,
        default=200,
        help='tracklets per measurement (default: 200)')
    parser.add_argument(
        '--repeats',
        type=int,
        default=5,
        help='measurements per pipeline; the best is kept (default: 5)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config')
    return parser.parse_args()


def cpu_name() -> str:
    """The processor's model name where Linux tells it."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build_preprocessor(cfg: Config) -> torch.nn.Module:
    """The config's data preprocessor, or the default one."""
    model = cfg.get('model') or {}
    preprocessor_cfg = model.get('data_preprocessor') or dict(
        type='TrackletDataPreprocessor')
    return MODELS.build(preprocessor_cfg)


def pil_pipeline(size: Tuple[int, int],
                 train: bool) -> Callable[[List[str]], torch.Tensor]:
    """The same work with PIL and torchvision, one frame at a time.

    Args:
        size (tuple[int, int]): Input size (h, w).
        train (bool): Add the flip and random erasing.

    Returns:
        callable: Frame paths -> normalised ``[T, 3, H, W]`` tensor.
    """
    h, w = size

    def erase(img: Image.Image) -> Image.Image:
        area = img.size[0] * img.size[1]
        for _ in range(100):
            target = random.uniform(0.02, 0.2) * area
            ratio = random.uniform(0.3, 1 / 0.3)
            bh = int(round((target * ratio)**0.5))
            bw = int(round((target / ratio)**0.5))
            if bw < img.size[0] and bh < img.size[1]:
                x1 = random.randint(0, img.size[0] - bw)
                y1 = random.randint(0, img.size[1] - bh)
                colour = tuple(random.randint(0, 255) for _ in range(3))
                img.paste(Image.new('RGB', (bw, bh), colour), (x1, y1))
                return img
        return img

    def run(paths: List[str]) -> torch.Tensor:
        frames = []
        flip = train and random.random() < 0.5
        for path in paths:
            img = Image.open(path).convert('RGB')
            if img.size != (w, h):
                img = img.resize((w, h), Image.BILINEAR)
            if flip:
                img = img.transpose(Image.FLIP_LEFT_RIGHT)
            if train and random.random() < 0.5:
                img = erase(img)
            frames.append(TF.normalize(TF.to_tensor(img), MEAN, STD))
        return torch.stack(frames)

    return run


def time_ours(dataset, indices: List[int],
              preprocessor: Optional[torch.nn.Module]) -> Tuple[float, list]:
    """Frames/s of ``dataset[i]`` (then ``preprocessor`` on it, one sample
    per batch) and the sampled frame paths."""
    frames, sampled = 0, []
    start = time.perf_counter()
    for i in indices:
        packed = dataset[i]
        if preprocessor is not None:
            preprocessor(
                dict(
                    inputs=[packed['inputs']],
                    data_samples=[packed['data_samples']]))
        paths = packed['data_samples'].frame_paths
        frames += len(paths)
        sampled.append(paths)
    return frames / (time.perf_counter() - start), sampled


def time_pil(run: Callable, sampled: list) -> float:
    """Frames/s of the PIL pipeline over the given frames."""
    start = time.perf_counter()
    for paths in sampled:
        run(paths)
    return sum(len(p) for p in sampled) / (time.perf_counter() - start)


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    if args.data_root:
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
            replace_key(cfg.get(key), 'data_root', args.data_root)
    init_default_scope(cfg.get('default_scope', 'mmtfclip'))
    # One thread, as in a data-loader worker.
    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    random.seed(0)
    np.random.seed(0)

    preprocessor = build_preprocessor(cfg)
    rows = []
    for name, loader, train in (('train', cfg.train_dataloader, True),
                                ('test', cfg.test_dataloader, False)):
        dataset = DATASETS.build(loader.dataset)
        indices = [i % len(dataset) for i in range(args.num_samples)]
        size = tuple(dataset[0]['inputs'].shape[-2:])
        run_pil = pil_pipeline(size, train)
        # Warm the page cache so that every pipeline reads from memory.
        _, sampled = time_ours(dataset, indices, None)
        best = np.zeros(3)
        # Interleaved runs, best of each: load from other processes on the
        # machine affects all three alike.
        for _ in range(args.repeats):
            ours, sampled = time_ours(dataset, indices, None)
            normed, _ = time_ours(dataset, indices, preprocessor)
            pil = time_pil(run_pil, sampled)
            best = np.maximum(best, (ours, normed, pil))
        rows.append((name, *best))

    lines = [
        f'{args.config}: {args.num_samples} tracklets per run, best of '
        f'{args.repeats}, 1 thread',
        f'machine: {cpu_name()}, torch {torch.__version__}, '
        f'OpenCV {cv2.__version__}, Pillow {Image.__version__}',
        'frames/s: pipeline (uint8) | pipeline + CPU normalisation | PIL',
        f'{"pipeline":<9}{"uint8":>9}{"+norm":>9}{"PIL":>9}'
        f'{"uint8/PIL":>11}{"+norm/PIL":>11}',
    ]
    for name, ours, normed, pil in rows:
        lines.append(f'{name:<9}{ours:9.0f}{normed:9.0f}{pil:9.0f}'
                     f'{ours / pil:10.2f}x{normed / pil:10.2f}x')
    print_log('\n'.join(lines), logger='current')


if __name__ == '__main__':
    main()
