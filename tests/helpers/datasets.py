# Copyright (c) mmtfclip contributors. All rights reserved.
"""Small copies of the published dataset layouts, written for tests.

Each writer creates tiny frames (a few pixels, value = frame number) in the
exact folder and annotation layout of a release and returns what a reader
should find, so tests of the datasets, the tools and the configs need no
download and no committed fixture. MARS has a realistic generator of its
own: :func:`mmtfclip.utils.make_synthetic_mars`.
"""
import json
import os
import os.path as osp
from typing import Dict, List, Optional, Sequence, Tuple

import cv2
import h5py
import numpy as np
from scipy.io import savemat


def _write_frames(folder: str, names: Sequence[str], size: Tuple[int,
                                                                 int]) -> None:
    os.makedirs(folder, exist_ok=True)
    for k, name in enumerate(names):
        img = np.full(size + (3, ), (k * 17) % 256, dtype=np.uint8)
        if not cv2.imwrite(osp.join(folder, name), img):
            raise OSError(f'could not write {osp.join(folder, name)}')


def write_lsvid_layout(
    root: str,
    num_train_ids: int = 3,
    num_test_ids: int = 3,
    info_prefix: bool = False,
    size: Tuple[int, int] = (16, 8)) -> dict:
    """Write an LS-VID-like release.

    Every person has one tracklet in each of cameras 2 and 5 (1-based in
    the names); training tracklets have 7 and 5 frames, test tracklets 3 and
    4. The first test tracklet of each person is a query; one extra test
    line has pid -1 (junk). ``query`` is stored as a (1, N) HDF5 matrix as
    in the published ``info_test.mat``.

    Args:
        root (str): The data root to create.
        num_train_ids (int): Training persons. Defaults to 3.
        num_test_ids (int): Test persons. Defaults to 3.
        info_prefix (bool): Put ``list_sequence/`` and ``data/`` under
            ``info/`` as the TF-CLIP code expects. Defaults to False.
        size (tuple[int, int]): Frame (h, w). Defaults to (16, 8).

    Returns:
        dict: ``train``, ``query`` and ``gallery`` lists of
        ``(pid, camid, num_frames)`` in list order.
    """
    lists = osp.join(root, 'info' if info_prefix else '', 'list_sequence')
    mat_dir = osp.join(root, 'info' if info_prefix else 'test', 'data')
    os.makedirs(lists, exist_ok=True)
    os.makedirs(mat_dir, exist_ok=True)
    expected: Dict[str, list] = dict(train=[], query=[], gallery=[])
    test_lines, query_rows = [], []
    for subset, pids, lengths in (('train', range(1,
                                                  num_train_ids + 1), (7, 5)),
                                  ('test', range(101,
                                                 101 + num_test_ids), (3, 4))):
        lines = []
        for pid in pids:
            for k, (cam, length) in enumerate(zip((2, 5), lengths)):
                stem = f'{pid:04d}_{k + 1:04d}_{cam:02d}_0001'
                folder = f'tracklet_{subset}/{pid:04d}/{stem}'
                _write_frames(
                    osp.join(root, folder),
                    [f'{stem}_{f:04d}.jpg' for f in range(1, length + 1)],
                    size)
                lines.append(f'{folder}/{stem} {pid}')
                entry = (pid, cam - 1, length)
                if subset == 'train':
                    expected['train'].append(entry)
                elif k == 0:
                    query_rows.append(len(test_lines) + len(lines))
                    expected['query'].append(entry)
                else:
                    expected['gallery'].append(entry)
        if subset == 'train':
            with open(osp.join(lists, 'list_seq_train.txt'), 'w') as f:
                f.write('\n'.join(lines) + '\n')
        else:
            test_lines += lines
    junk_stem = '0000_0001_03_0001'
    _write_frames(
        osp.join(root, 'tracklet_test/0000', junk_stem),
        [f'{junk_stem}_0001.jpg'], size)
    test_lines.append(f'tracklet_test/0000/{junk_stem}/{junk_stem} -1')
    with open(osp.join(lists, 'list_seq_test.txt'), 'w') as f:
        f.write('\n'.join(test_lines) + '\n')
    with h5py.File(osp.join(mat_dir, 'info_test.mat'), 'w') as f:
        f.create_dataset(
            'query', data=np.array([query_rows], dtype=np.float64))
    return expected


def write_ilidsvid_layout(root: str,
                          num_persons: int = 6,
                          person_numbers: Optional[Sequence[int]] = None,
                          size: Tuple[int, int] = (16, 8),
                          min_frames: int = 3) -> Dict[str, np.ndarray]:
    """Write an iLIDS-VID-like release.

    Person folders ``personNNN`` (numbers with gaps, as in the release) in
    ``cam1`` and ``cam2``; person i has ``min_frames + i`` frames in cam1
    and ``min_frames + 1 + i`` in cam2, named ``camC_personNNN_FFFFF.png``.
    ``ls_set`` has 10 rows, row r a permutation of 1..num_persons drawn
    with seed r.

    Args:
        root (str): The data root to create.
        num_persons (int): Persons (even). Defaults to 6.
        person_numbers (Sequence[int], optional): Folder numbers. Defaults
            to 1, 3, 4, 7, ... (gaps included).
        size (tuple[int, int]): Frame (h, w). Defaults to (16, 8).
        min_frames (int): Frames of the first person in cam1. Defaults
            to 3.

    Returns:
        dict: ``numbers`` (folder numbers in sorted order) and ``ls_set``.
    """
    numbers = list(person_numbers
                   or [1 + 2 * i - i // 2 for i in range(num_persons)])
    seq = osp.join(root, 'i-LIDS-VID', 'sequences')
    for i, number in enumerate(numbers):
        for cam, length in ((1, min_frames + i), (2, min_frames + 1 + i)):
            person = f'person{number:03d}'
            _write_frames(
                osp.join(seq, f'cam{cam}', person), [
                    f'cam{cam}_{person}_{f:05d}.png'
                    for f in range(1, length + 1)
                ], size)
    ls_set = np.stack([
        np.random.RandomState(r).permutation(len(numbers)) + 1
        for r in range(10)
    ]).astype(np.float64)
    split_dir = osp.join(root, 'train-test people splits')
    os.makedirs(split_dir, exist_ok=True)
    savemat(
        osp.join(split_dir, 'train_test_splits_ilidsvid.mat'),
        dict(ls_set=ls_set))
    return dict(numbers=np.array(sorted(numbers)), ls_set=ls_set)


def write_prid2011_layout(
    root: str,
    num_shared: int = 6,
    num_only_b: int = 2,
    with_splits: bool = True,
    short_persons: Sequence[int] = (),
    size: Tuple[int, int] = (16, 8)
) -> Dict[str, List[str]]:
    """Write a PRID-2011-like multi-shot release.

    Persons ``person_0001`` .. are in both cameras (``num_shared``);
    ``num_only_b`` more are in ``cam_b`` only. Sequences have 25 frames
    (``0001.png``...) except the persons in ``short_persons`` (5 frames in
    cam_a). With ``with_splits``, ``splits_prid2011.json`` holds 10 splits:
    split r shuffles the shared persons with seed r + 100 and halves them.

    Args:
        root (str): The data root to create.
        num_shared (int): Persons seen by both cameras. Defaults to 6.
        num_only_b (int): Persons seen by cam_b only. Defaults to 2.
        with_splits (bool): Write the splits file. Defaults to True.
        short_persons (Sequence[int]): Person numbers with a short cam_a
            sequence. Defaults to ().
        size (tuple[int, int]): Frame (h, w). Defaults to (16, 8).

    Returns:
        dict: ``shared`` person folder names, and ``splits`` when written.
    """
    base = osp.join(root, 'prid_2011', 'multi_shot')
    shared = [f'person_{i:04d}' for i in range(1, num_shared + 1)]
    only_b = [
        f'person_{i:04d}'
        for i in range(num_shared + 1, num_shared + num_only_b + 1)
    ]
    for name in shared + only_b:
        number = int(name[-4:])
        cams = ('cam_a', 'cam_b') if name in shared else ('cam_b', )
        for cam in cams:
            length = 5 if cam == 'cam_a' and number in short_persons else 25
            _write_frames(
                osp.join(base, cam, name),
                [f'{f:04d}.png' for f in range(1, length + 1)], size)
    result: Dict[str, list] = dict(shared=shared)
    if with_splits:
        splits = []
        for r in range(10):
            order = np.random.RandomState(r + 100).permutation(len(shared))
            half = len(shared) // 2
            splits.append(
                dict(
                    train=[shared[i] for i in order[:half]],
                    test=[shared[i] for i in order[half:]]))
        with open(osp.join(root, 'splits_prid2011.json'), 'w') as f:
            json.dump(splits, f)
        result['splits'] = splits
    return result
