# Copyright (c) mmtfclip contributors. All rights reserved.
import os.path as osp
from typing import List, Tuple

import numpy as np

from mmtfclip.registry import DATASETS
from .base_video_reid_dataset import BaseVideoReIDDataset
from .utils import (check_query_rows, check_unique_rows, load_int_matrix,
                    read_text_lines)

# Frame names look like ``0001C1T0001F001.jpg``: person (4 characters,
# ``00-1`` for junk), camera digit, tracklet, frame.
_PID_SLICE = slice(0, 4)
_CAM_INDEX = 5


def read_name_list(path: str) -> List[str]:
    """Read a MARS name list (one frame file name per line)."""
    return [line for _, line in read_text_lines(path)]


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

    A tracklet whose frame names span two persons or two cameras, whose
    pid or camera column contradicts its frame names, a range outside the
    name list, two rows with the same range, a query index out of range or
    repeated, a name list that is not UTF-8 (or has a byte-order mark) and
    a corrupt ``.mat`` file raise an error naming the file and the row.

    Args:
        data_root (str): The extracted release (e.g. ``'data/mars'``).
        split (str): ``'train'``, ``'query'`` or ``'gallery'``.
            Defaults to ``'train'``.
        **kwargs: See :class:`BaseVideoReIDDataset`.
    """

    METAINFO = dict(dataset_name='MARS', num_cams=None)
    # The name lists give the frames; the folders are never listed.
    LISTS_FOLDERS = False

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
        check_unique_rows([tuple(info[row, :2]) for row in rows],
                          [f'{info_file}, row {row + 1}' for row in rows],
                          'start and end frames')

        tracklets = []
        for row in rows:
            start, end, pid, cam = (int(v) for v in info[row])
            where = f'{info_file}, row {row + 1}'
            if not 1 <= start <= end <= len(names):
                raise ValueError(f'{where}: frames {start}..{end} are outside '
                                 f'{names_file} ({len(names)} names)')
            if cam < 1:
                raise ValueError(f'{where}: camera {cam} is not 1-based')
            frames = names[start - 1:end]
            if pid == -1:
                named = sorted({n[_PID_SLICE] for n in frames} - {'00-1'})
                if named:
                    raise ValueError(
                        f'{where}: the pid column says -1 (junk) but the '
                        f'frame names say person {named[0]!r}')
                continue
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
            named_pid = -1 if folder == '00-1' else int(folder) \
                if folder.isdigit() else None
            if named_pid != pid:
                raise ValueError(
                    f'{where}: the pid column says {pid} but the frame names '
                    f'({frames[0]}, ...) say person {folder!r}')
            if cams[0] != str(cam):
                raise ValueError(
                    f'{where}: the camera column says {cam} but the frame '
                    f'names ({frames[0]}, ...) say camera {cams[0]}')
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
