# Copyright (c) mmtfclip contributors. All rights reserved.
import os
import os.path as osp
from typing import Dict, List, Optional, Tuple

import h5py
import numpy as np

from mmtfclip.registry import DATASETS
from .base_video_reid_dataset import BaseVideoReIDDataset
from .utils import (check_query_rows, check_unique_rows, chunk_bounds,
                    read_text_lines)


def read_sequence_list(path: str) -> List[Tuple[str, int, int]]:
    """Read an LS-VID list: ``<tracklet path prefix> <pid>`` per line.

    Args:
        path (str): The list file (UTF-8 without a byte-order mark).

    Returns:
        list[tuple]: ``(prefix, pid, line number)`` per non-empty line.

    Raises:
        ValueError: Naming the file and line of a malformed or repeated
            line.
    """
    rows = []
    for number, line in read_text_lines(path):
        fields = line.split()
        if len(fields) != 2:
            raise ValueError(
                f'{path}, line {number}: expected "<tracklet path '
                f'prefix> <pid>", got {line!r}')
        try:
            pid = int(fields[1])
        except ValueError:
            raise ValueError(f'{path}, line {number}: the pid '
                             f'{fields[1]!r} is not an integer') from None
        rows.append((fields[0], pid, number))
    check_unique_rows([prefix for prefix, _, _ in rows],
                      [f'{path}, line {number}' for _, _, number in rows],
                      'tracklet prefix')
    return rows


@DATASETS.register_module()
class LSVID(BaseVideoReIDDataset):
    """LS-VID (Li et al., ICCV 2019), read from its published release.

    Layout under ``data_root`` (the ``info/`` prefix that the TF-CLIP code
    uses for both annotation folders is accepted too)::

        list_sequence/list_seq_train.txt   "<tracklet path prefix> <pid>"
        list_sequence/list_seq_test.txt
        test/data/info_test.mat            MATLAB v7.3 (HDF5): ``query``,
                                           1-based rows of the test list
        tracklet_train/..., tracklet_test/...   the frames

    A tracklet's frames are the files of the prefix's folder whose names
    start with the prefix's last component, in name order; its camera is
    the third ``_``-separated field of a frame name (1-based). The query is
    the test rows named by ``query``; the gallery the other test rows. Junk
    (pid -1) is dropped. Full size: train 842 ids / 2,831 tracklets, query
    3,504, gallery 7,829 (the MARS-style protocol adds the queries to the
    gallery at evaluation). A repeated list line, a camera beyond
    ``num_cams`` (15), a list that is not UTF-8 (or has a byte-order mark)
    and an unreadable ``info_test.mat`` raise an error naming the file and
    line.

    The TF-CLIP authors (``datasets/set/lsvid.py``, ``sampling_step=48``)
    train on 48-frame chunks of the training tracklets (the remainder
    joins the last chunk) and drop the tracklets shorter than 48 frames:
    ``train_chunk_len=48, drop_short_tracklets=True``. Chunks are items
    with ``source_tracklet`` and ``first_frame``.

    Args:
        data_root (str): The extracted release (e.g. ``'data/lsvid'``).
        split (str): ``'train'``, ``'query'`` or ``'gallery'``.
            Defaults to ``'train'``.
        train_chunk_len (int, optional): Cut each training tracklet into
            chunks of this many frames, the remainder joining the last chunk
            (the authors' ``sampling_step = 48``). The test splits are never
            cut. Defaults to None (no cut).
        drop_short_tracklets (bool): With ``train_chunk_len``, drop the
            training tracklets shorter than it, as the authors' code does
            (``len // 48 == 0`` chunks); False keeps them whole, one item
            each. The log says how many were dropped. Defaults to False.
        **kwargs: See :class:`BaseVideoReIDDataset`.
    """

    METAINFO = dict(dataset_name='LSVID', num_cams=15)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 train_chunk_len: Optional[int] = None,
                 drop_short_tracklets: bool = False,
                 **kwargs) -> None:
        if train_chunk_len is not None and train_chunk_len < 1:
            raise ValueError(f'train_chunk_len must be >= 1 or None, got '
                             f'{train_chunk_len}')
        if drop_short_tracklets and train_chunk_len is None:
            raise ValueError('LSVID: drop_short_tracklets=True needs '
                             'train_chunk_len (the length below which a '
                             'training tracklet is dropped)')
        self.train_chunk_len = train_chunk_len
        self.drop_short_tracklets = drop_short_tracklets
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _find(self, *candidates: str) -> str:
        paths = [osp.join(self.data_root, c) for c in candidates]
        for path in paths:
            if osp.isfile(path):
                return path
        raise FileNotFoundError(f'LSVID: none of {paths} exists (see '
                                'docs/dataset_preparation.md)')

    def _list_file(self) -> str:
        name = 'list_seq_train.txt' if self.split == 'train' else \
            'list_seq_test.txt'
        return self._find(f'list_sequence/{name}',
                          f'info/list_sequence/{name}')

    def _query_file(self) -> str:
        return self._find('test/data/info_test.mat', 'info/data/info_test.mat')

    def annotation_files(self) -> List[str]:
        files = [self._list_file()]
        if self.split != 'train':
            files.append(self._query_file())
        return files

    def cut_tracklet(
            self, frames: List[str]) -> Optional[List[Tuple[int, List[str]]]]:
        if self.split != 'train' or self.train_chunk_len is None:
            return None
        bounds = chunk_bounds(len(frames), self.train_chunk_len)
        if not bounds and not self.drop_short_tracklets:
            bounds = [(0, len(frames))]
        return [(start, frames[start:end]) for start, end in bounds]

    def cut_description(self) -> str:
        rule = 'dropped' if self.drop_short_tracklets else 'kept whole'
        return (f'chunks of {self.train_chunk_len} frames, shorter '
                f'tracklets {rule}')

    def _query_rows(self, num_rows: int) -> np.ndarray:
        path = self._query_file()
        try:
            with h5py.File(path, 'r') as f:
                query = np.asarray(f['query']).ravel()
        except (OSError, KeyError) as err:
            raise ValueError(f'{path}: cannot read the HDF5 variable '
                             f"'query' ({err})") from err
        rows = query.astype(np.int64)
        if not np.array_equal(rows, query):
            raise ValueError(f'{path}: query holds non-integer values')
        return check_query_rows(rows, num_rows, path, 'query',
                                'lines of list_seq_test.txt')

    def parse_tracklets(self) -> Tuple[list, int]:
        list_file = self._list_file()
        rows = read_sequence_list(list_file)
        if self.split != 'train':
            query = self._query_rows(len(rows))
            if self.split == 'query':
                rows = [rows[i] for i in query]
            else:
                is_query = np.zeros(len(rows), dtype=bool)
                is_query[query] = True
                rows = [r for r, q in zip(rows, is_query) if not q]

        num_cams = self._user_metainfo.get('num_cams') or \
            self.METAINFO['num_cams']
        listing: Dict[str, List[str]] = {}
        tracklets = []
        for prefix, pid, number in rows:
            if pid == -1:
                continue
            folder, stem = osp.split(prefix)
            if folder not in listing:
                path = osp.join(self.data_root, folder)
                listing[folder] = sorted(
                    os.listdir(path)) if osp.isdir(path) else []
            names = [n for n in listing[folder] if n.startswith(stem)]
            where = f'{list_file}, line {number}'
            if not names:
                raise FileNotFoundError(f'{where}: no frame starts with '
                                        f'{osp.join(self.data_root, prefix)}')
            cams = set()
            for name in names:
                fields = name.split('_')
                if len(fields) < 3 or not fields[2].isdigit():
                    raise ValueError(
                        f'{where}: cannot read the camera (third "_" field) '
                        f'of the frame {name!r}')
                cams.add(int(fields[2]))
            if len(cams) != 1 or min(cams) < 1:
                raise ValueError(f'{where}: the frames name the cameras '
                                 f'{sorted(cams)}, expected one, 1-based')
            if max(cams) > num_cams:
                raise ValueError(f'{where}: the frames name camera '
                                 f'{max(cams)}, but num_cams = {num_cams}')
            frames = [f'{folder}/{n}' if folder else n for n in names]
            tracklets.append((frames, pid, cams.pop() - 1))
        return tracklets, num_cams
