# Copyright (c) mmtfclip contributors. All rights reserved.
"""Tiny Market-1501 and MSMT17 layouts for tests (generated, not shipped)."""
import os
import os.path as osp
from typing import Dict, List, Tuple

import numpy as np
from PIL import Image


def _write_image(path: str, rng: np.random.Generator,
                 size: Tuple[int, int]) -> None:
    os.makedirs(osp.dirname(path), exist_ok=True)
    pixels = rng.integers(0, 256, size + (3, ), dtype=np.uint8)
    Image.fromarray(pixels).save(path, quality=90)


def make_market1501_layout(root: str,
                           seed: int = 0,
                           size: Tuple[int, int] = (16, 8)) -> Dict[str, list]:
    """Write a tiny Market-1501 release (random pixels, real names).

    Train: persons 2, 7, 11 (odd ids, as the release); query: 3, 5; gallery:
    3, 5, 9 plus distractors (``0000``) and junk (``-1``) in every folder.

    Args:
        root (str): The folder to write (``Market-1501-v15.09.15``).
        seed (int): Seed of the pixels and of the names. Defaults to 0.
        size (tuple[int, int]): Image ``(h, w)``. Defaults to (16, 8).

    Returns:
        dict: ``{folder: [file names]}`` of what was written.
    """
    rng = np.random.default_rng(seed)
    plan = dict(
        bounding_box_train=[2, 7, 11, -1],
        query=[3, 5, -1],
        bounding_box_test=[3, 5, 9, 0, -1])
    written = {}
    for folder, pids in plan.items():
        names = []
        for pid in pids:
            for cam in rng.choice(np.arange(1, 7), size=2, replace=False):
                for frame in range(int(rng.integers(1, 4))):
                    tag = '-1' if pid == -1 else f'{pid:04d}'
                    name = (f'{tag}_c{cam}s{int(rng.integers(1, 7))}_'
                            f'{frame * 25 + 1:06d}_0{frame + 1}.jpg')
                    _write_image(osp.join(root, folder, name), rng, size)
                    names.append(name)
        # Not an image of the release: ignored.
        open(osp.join(root, folder, 'Thumbs.db'), 'wb').close()
        written[folder] = names
    return written


def make_msmt17_layout(
    root: str,
    version: str = 'MSMT17_V1',
    seed: int = 0,
    size: Tuple[int, int] = (16, 8)) -> Dict[str, List]:
    """Write a tiny MSMT17 release of either version.

    Train ids 0..2 (val images of the same ids), test ids 0..3, cameras
    between 1 and 15; the lists name every image as the release does.

    Args:
        root (str): The folder to write (``MSMT17_V1`` or ``MSMT17_V2``).
        version (str): 'MSMT17_V1' or 'MSMT17_V2'. Defaults to 'MSMT17_V1'.
        seed (int): Seed. Defaults to 0.
        size (tuple[int, int]): Image ``(h, w)``. Defaults to (16, 8).

    Returns:
        dict: ``{list file: [(relative path, pid)]}``.
    """
    folders = dict(
        MSMT17_V1=('train', 'test'),
        MSMT17_V2=('mask_train_v2', 'mask_test_v2'))[version]
    rng = np.random.default_rng(seed)
    plan = dict(
        list_train=(folders[0], range(3), 3),
        list_val=(folders[0], range(3), 1),
        list_query=(folders[1], range(4), 1),
        list_gallery=(folders[1], range(4), 3))
    lists = {}
    counter = 0
    for list_name, (folder, pids, per_id) in plan.items():
        lines = []
        for pid in pids:
            for _ in range(per_id):
                cam = int(rng.integers(1, 16))
                counter += 1
                rel = (f'{pid:04d}/{pid:04d}_{counter:03d}_{cam:02d}_'
                       f'0303morning_{counter:04d}_0.jpg')
                _write_image(osp.join(root, folder, rel), rng, size)
                lines.append((rel, pid))
        with open(osp.join(root, f'{list_name}.txt'), 'w') as f:
            f.writelines(f'{rel} {pid}\n' for rel, pid in lines)
        lists[f'{list_name}.txt'] = lines
    return lists
