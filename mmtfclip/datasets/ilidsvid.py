# Copyright (c) mmtfclip contributors. All rights reserved.
import os.path as osp
from typing import List, Optional, Tuple

from mmtfclip.registry import DATASETS
from .base_video_reid_dataset import BaseVideoReIDDataset
from .utils import (camera_pair_tracklets, check_person_split, check_split_id,
                    load_int_matrix, natural_sort_key, person_folders,
                    sliding_windows)

_SEQUENCES = osp.join('i-LIDS-VID', 'sequences')
_SPLITS = osp.join('train-test people splits',
                   'train_test_splits_ilidsvid.mat')


@DATASETS.register_module()
class iLIDSVID(BaseVideoReIDDataset):
    """iLIDS-VID (Wang et al., ECCV 2014), read from its published release.

    Layout under ``data_root``::

        i-LIDS-VID/sequences/cam1/personNNN/*.png
        i-LIDS-VID/sequences/cam2/personNNN/*.png
        train-test people splits/train_test_splits_ilidsvid.mat

    ``ls_set`` in the ``.mat`` file has 10 rows (splits) of 1-based indices
    into the sorted person folders. Following the protocol of Wang et al.
    (and torchreid), the first half of a row is the test set and the second
    half the training set; the TF-CLIP code takes the first half for
    training instead. Training uses both cameras of each training person;
    the query is camera 1 and the gallery camera 2 of the test persons.
    Query and gallery keep the number of the person folder as pid. A row
    that names a person twice (within a half, or in both halves) is
    refused.

    Two ways to present a sequence:

    - ``window_len=None`` (whole tracklets): one item per person and camera.
    - ``window_len=T`` (the TF-CLIP authors' iLIDS-VID path,
      ``datasets/set/datasequence.py`` and ``ilidsvidsequence.py``, with
      ``SEQ_LEN = T`` and ``SEQ_SRD = window_stride``): each sequence becomes
      windows of ``T`` consecutive frames starting every ``window_stride``
      frames while the start is below ``n - T`` (see
      :func:`mmtfclip.datasets.utils.sliding_windows`: the window ending on
      the last frame is not taken and the frames after the last window are
      unused); a sequence of at most ``T`` frames is one window padded to
      ``T`` by repeating its last frame, as the authors' data loaders pad.
      Every split is cut, so the query and gallery items are windows too:
      their evaluator ranks each window as one query and one gallery entry
      (it never averages the windows of a sequence), and so does
      :class:`ReIDMetric` on these items. Each item keeps
      ``source_tracklet`` and ``first_frame`` to trace it back.

    Args:
        data_root (str): The extracted release (e.g. ``'data/ilidsvid'``).
        split (str): ``'train'``, ``'query'`` or ``'gallery'``.
            Defaults to ``'train'``.
        split_id (int): Which of the 10 splits, 0..9. Defaults to 0.
        window_len (int, optional): Frames per window, or None for whole
            tracklets. Defaults to None.
        window_stride (int): Frames between the starts of two windows (the
            authors' ``SEQ_SRD``). Defaults to 4.
        **kwargs: See :class:`BaseVideoReIDDataset`.
    """

    METAINFO = dict(dataset_name='iLIDSVID', num_cams=2)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 split_id: int = 0,
                 window_len: Optional[int] = None,
                 window_stride: int = 4,
                 **kwargs) -> None:
        for name, value in (('window_len', window_len), ('window_stride',
                                                         window_stride)):
            if value is not None and (not isinstance(value, int) or value < 1):
                raise ValueError(f'iLIDSVID: {name} must be a positive '
                                 f'integer, got {value!r}')
        self.split_id = split_id
        self.window_len = window_len
        self.window_stride = window_stride
        super().__init__(data_root=data_root, split=split, **kwargs)

    def annotation_files(self) -> List[str]:
        path = osp.join(self.data_root, _SPLITS)
        if not osp.isfile(path):
            raise FileNotFoundError(
                f'iLIDSVID: the split file {path} does not exist (see '
                'docs/dataset_preparation.md)')
        return [path]

    def cache_params(self) -> dict:
        return dict(split_id=self.split_id)

    def cut_tracklet(
            self, frames: List[str]) -> Optional[List[Tuple[int, List[str]]]]:
        if self.window_len is None:
            return None
        pieces = []
        for start, end in sliding_windows(
                len(frames), self.window_len, self.window_stride):
            window = frames[start:end]
            window += window[-1:] * (self.window_len - len(window))
            pieces.append((start, window))
        return pieces

    def cut_description(self) -> str:
        return (f'windows of {self.window_len} frames, stride '
                f'{self.window_stride}')

    def parse_tracklets(self) -> Tuple[list, int]:
        split_file = self.annotation_files()[0]
        ls_set = load_int_matrix(split_file, 'ls_set')
        if ls_set.ndim != 2:
            raise ValueError(f'{split_file}: ls_set must be a matrix, got '
                             f'shape {ls_set.shape}')
        check_split_id(self.split_id, ls_set.shape[0], split_file)
        row = ls_set[self.split_id]

        seq_dir = osp.join(self.data_root, _SEQUENCES)
        persons = person_folders(osp.join(seq_dir, 'cam1'))
        in_cam2 = set(person_folders(osp.join(seq_dir, 'cam2')))
        bad = [(c, int(i)) for c, i in enumerate(row)
               if not 1 <= i <= len(persons)]
        if bad:
            col, value = bad[0]
            raise ValueError(
                f'{split_file}: ls_set row {self.split_id + 1}, column '
                f'{col + 1} names person {value}, but '
                f'{osp.join(seq_dir, "cam1")} has {len(persons)} person '
                'folders')
        half = len(row) // 2
        # The protocol's names: the second half trains, the first tests.
        check_person_split([persons[i - 1] for i in row[half:]],
                           [persons[i - 1] for i in row[:half]],
                           f'{split_file}, ls_set row {self.split_id + 1}')
        chosen = row[half:] if self.split == 'train' else row[:half]
        names = sorted((persons[i - 1] for i in chosen), key=natural_sort_key)
        missing = [n for n in names if n not in in_cam2]
        if missing:
            raise FileNotFoundError(
                f'{split_file}: split {self.split_id} names {missing[:5]}, '
                f'missing from {osp.join(seq_dir, "cam2")}')

        tracklets = camera_pair_tracklets(
            self.data_root, names,
            (f'{_SEQUENCES}/cam1', f'{_SEQUENCES}/cam2'), self.split,
            split_file, f'iLIDSVID split {self.split_id} ({split_file})')
        return tracklets, 2
