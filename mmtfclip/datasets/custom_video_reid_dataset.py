# Copyright (c) mmtfclip contributors. All rights reserved.
import os.path as osp
from typing import List, Tuple

from mmtfclip.registry import DATASETS
from .base_video_reid_dataset import BaseVideoReIDDataset
from .utils import check_unique_rows, frames_of, read_text_lines


@DATASETS.register_module()
class CustomVideoReIDDataset(BaseVideoReIDDataset):
    """Your own tracklets, listed in a simple annotation file per split.

    Each non-empty line of ``ann_file`` that does not start with ``#`` is
    one tracklet::

        <frames> <pid> <camid>

    ``<frames>`` is either a folder holding the tracklet's images (taken in
    natural name order, so ``f2.jpg`` comes before ``f10.jpg``) or a
    comma-separated list of image files in temporal order; relative paths
    are relative to ``data_root``. ``<pid>`` is an integer person id (-1
    marks junk, which is dropped; 0 may mark distractors), ``<camid>`` a
    0-based camera index. The path is everything before the last two
    fields, so it may contain spaces (a frame list may not contain commas).

    Write one file per split (e.g. ``train.txt``, ``query.txt``,
    ``gallery.txt``) and build one dataset per split with ``split`` set;
    training ids are relabelled to 0..N-1, query and gallery keep theirs.
    ``num_cams`` is the largest camid + 1 of the file unless given in
    ``metainfo``: set it when the query and gallery files see different
    cameras, so that the two agree.

    Every listed frame must exist: a missing one raises an error naming the
    file and the line, as do two lines with the same frames, a camid at or
    beyond a ``num_cams`` given in ``metainfo``, and a file that is not
    UTF-8 (or starts with a byte-order mark).

    Args:
        data_root (str): Root of the frames and the annotation file.
        ann_file (str): The annotation file, relative to ``data_root`` or
            absolute.
        split (str): ``'train'``, ``'query'`` or ``'gallery'``.
            Defaults to ``'train'``.
        **kwargs: See :class:`BaseVideoReIDDataset`.
    """

    METAINFO = dict(dataset_name='CustomVideoReID', num_cams=None)

    def __init__(self,
                 data_root: str,
                 ann_file: str,
                 split: str = 'train',
                 **kwargs) -> None:
        if not ann_file:
            raise ValueError('CustomVideoReIDDataset needs `ann_file`')
        super().__init__(
            data_root=data_root, split=split, ann_file=ann_file, **kwargs)

    def annotation_files(self) -> List[str]:
        if not osp.isfile(self.ann_file):
            raise FileNotFoundError(
                f'CustomVideoReIDDataset: {self.ann_file} does not exist')
        return [self.ann_file]

    def _relative(self, path: str) -> str:
        full = osp.normpath(osp.join(self.data_root, path))
        rel = osp.relpath(full, self.data_root)
        # Paths outside the data root stay absolute.
        return full if rel.startswith('..') else rel.replace(osp.sep, '/')

    def parse_tracklets(self) -> Tuple[list, int]:
        path = self.annotation_files()[0]
        num_cams = self._user_metainfo.get('num_cams')
        tracklets, keys, places = [], [], []
        max_cam = -1
        for number, text in read_text_lines(path):
            if text.startswith('#'):
                continue
            where = f'{path}, line {number}'
            fields = text.rsplit(None, 2)
            if len(fields) != 3:
                raise ValueError(
                    f'{where}: expected "<frames> <pid> <camid>", got '
                    f'{text!r}')
            frames_field, pid_text, cam_text = fields
            try:
                pid, camid = int(pid_text), int(cam_text)
            except ValueError:
                raise ValueError(
                    f'{where}: pid and camid must be integers, got '
                    f'{pid_text!r} and {cam_text!r} (is the pid '
                    'missing?)') from None
            if camid < 0:
                raise ValueError(f'{where}: camid {camid} must be >= 0 '
                                 '(0-based)')
            if num_cams is not None and camid >= num_cams:
                raise ValueError(f'{where}: camid {camid} is beyond the '
                                 f'num_cams = {num_cams} of the metainfo '
                                 f'(0-based ids 0..{num_cams - 1})')
            if pid < -1:
                raise ValueError(f'{where}: pid {pid} must be >= -1')
            frames = self._frames(frames_field, where)
            keys.append(tuple(frames))
            places.append(where)
            max_cam = max(max_cam, camid)
            if pid == -1:
                continue
            tracklets.append((frames, pid, camid))
        check_unique_rows(keys, places, 'frames')
        return tracklets, max_cam + 1

    def _frames(self, field: str, where: str) -> List[str]:
        folder = osp.join(self.data_root, field)
        if ',' not in field and osp.isdir(folder):
            rel = self._relative(field)
            return frames_of(folder, rel, where)
        frames = []
        for item in field.split(','):
            item = item.strip()
            full = osp.join(self.data_root, item)
            if not osp.isfile(full):
                raise FileNotFoundError(
                    f'{where}: the frame (or folder) {full} does not exist')
            frames.append(self._relative(item))
        if any(osp.isabs(f) for f in frames):
            # All relative or all absolute, as the base class expects.
            frames = [osp.join(self.data_root, f) for f in frames]
        return frames
