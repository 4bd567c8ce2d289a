# Copyright (c) mmtfclip contributors. All rights reserved.
import os.path as osp
from typing import List, Tuple

import numpy as np
from scipy.io import loadmat

from mmtfclip.registry import DATASETS
from .base_video_reid_dataset import BaseVideoReIDDataset, check_query_rows

# Frame names look like ``0001C1T0001F001.jpg``: person (4 characters,
# ``00-1`` for junk), camera digit, tracklet, frame.
_PID_SLICE = slice(0, 4)
_CAM_INDEX = 5


def read_name_list(path: str) -> List[str]:
    """Read a MARS name list (one frame file name per line)."""
    with open(path, encoding='utf-8') as f:
        return [line.strip() for line in f if line.strip()]


def load_int_matrix(path: str, key: str) -> np.ndarray:
    """Load an integer-valued matrix from a MATLAB file.

    The published ``.mat`` files store the values as doubles; a non-integer
    value is an error rather than silently truncated.

    Args:
        path (str): The ``.mat`` file.
        key (str): The variable name.

    Returns:
        np.ndarray: The matrix as int64.
    """
    content = loadmat(path)
    if key not in content:
        found = sorted(k for k in content if not k.startswith('__'))
        raise KeyError(f'{path} has no variable {key!r} (found {found})')
    values = np.asarray(content[key])
    as_int = values.astype(np.int64)
    if not np.array_equal(as_int, values):
        raise ValueError(f'{path}: {key!r} holds non-integer values')
    return as_int


@DATASETS.register_module()
class MARS(BaseVideoReIDDataset):
    """MARS (Zheng et al., ECCV 2016), read from its published release.

    Layout under ``data_root``::

        bbox_train/<pid4>/<pid4>C<cam>T<track4>F<frame3>.jpg
        bbox_test/<pid4>/...            (``00-1``: junk, ``0000``: distractors)
        info/train_name.txt             one frame file name per line
        info/test_name.txt
        info/tracks_train_info.mat      ``track_train_info``: one row per
                                        tracklet: start, end (1-based,
                                        inclusive, into the name list),
                                        pid, camera (1-based)
        info/tracks_test_info.mat       ``track_test_info``, same columns
        info/query_IDX.mat              ``query_IDX``: 1-based rows of
                                        ``track_test_info``

    The query is the rows named by ``query_IDX`` (in that order), the gallery
    every other row of the test info (in file order). Junk tracklets (pid
    -1) are dropped from every split; distractors (pid 0) stay in the
    gallery. Full-size statistics: train 625 ids / 8,298 tracklets, query
    1,980 tracklets, query + gallery 11,310 valid tracklets.

    A tracklet whose frame names span two persons or two cameras, a range
    outside the name list or a query index out of range raises an error
    naming the file and the row.

    Args:
        data_root (str): The extracted release (e.g. ``'data/mars'``).
        split (str): ``'train'``, ``'query'`` or ``'gallery'``.
            Defaults to ``'train'``.
        **kwargs: See :class:`BaseVideoReIDDataset`.
    """

    METAINFO = dict(dataset_name='MARS', num_cams=None)

    def _info(self, name: str) -> str:
        return osp.join(self.data_root, 'info', name)

    def annotation_files(self) -> List[str]:
        names = [
            'train_name.txt', 'test_name.txt', 'tracks_train_info.mat',
            'tracks_test_info.mat', 'query_IDX.mat'
        ]
        paths = [self._info(n) for n in names]
        missing = [p for p in paths if not osp.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'MARS: missing annotation files {missing}. Expected the '
                'published layout (see docs/dataset_preparation.md).')
        return paths

    def parse_tracklets(self) -> Tuple[list, int]:
        self.annotation_files()
        train_info_file = self._info('tracks_train_info.mat')
        test_info_file = self._info('tracks_test_info.mat')
        train_info = load_int_matrix(train_info_file, 'track_train_info')
        test_info = load_int_matrix(test_info_file, 'track_test_info')
        for info, path in ((train_info, train_info_file), (test_info,
                                                           test_info_file)):
            if info.ndim != 2 or info.shape[1] != 4:
                raise ValueError(f'{path}: expected an N x 4 matrix (start, '
                                 f'end, pid, camera), got {info.shape}')
        num_cams = int(max(train_info[:, 3].max(), test_info[:, 3].max()))

        if self.split == 'train':
            names_file = self._info('train_name.txt')
            info, info_file, rows = train_info, train_info_file, range(
                len(train_info))
            home = 'bbox_train'
        else:
            names_file = self._info('test_name.txt')
            info, info_file = test_info, test_info_file
            rows = self._test_rows(len(test_info))
            home = 'bbox_test'
        names = read_name_list(names_file)

        tracklets = []
        for row in rows:
            start, end, pid, cam = (int(v) for v in info[row])
            where = f'{info_file}, row {row + 1}'
            if not 1 <= start <= end <= len(names):
                raise ValueError(f'{where}: frames {start}..{end} are outside '
                                 f'{names_file} ({len(names)} names)')
            if cam < 1:
                raise ValueError(f'{where}: camera {cam} is not 1-based')
            if pid == -1:
                continue
            frames = names[start - 1:end]
            persons = sorted({n[_PID_SLICE] for n in frames})
            if len(persons) != 1:
                raise ValueError(
                    f'{where}: the tracklet spans several persons '
                    f'{persons} in {names_file} (lines {start}..{end})')
            cams = sorted({n[_CAM_INDEX:_CAM_INDEX + 1] for n in frames})
            if len(cams) != 1:
                raise ValueError(
                    f'{where}: the tracklet spans several cameras {cams} '
                    f'in {names_file} (lines {start}..{end})')
            folder = persons[0]
            tracklets.append(
                ([f'{home}/{folder}/{n}' for n in frames], pid, cam - 1))
        return tracklets, num_cams

    def _test_rows(self, num_rows: int) -> List[int]:
        query_file = self._info('query_IDX.mat')
        query = load_int_matrix(query_file, 'query_IDX').ravel()
        query = check_query_rows(query, num_rows, query_file, 'query_IDX',
                                 'rows of tracks_test_info.mat')
        if self.split == 'query':
            return query.tolist()
        is_query = np.zeros(num_rows, dtype=bool)
        is_query[query] = True
        return np.flatnonzero(~is_query).tolist()
