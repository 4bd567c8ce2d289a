# Copyright (c) mmtfclip contributors. All rights reserved.
import os
import os.path as osp
from typing import List, Tuple

from mmtfclip.registry import DATASETS
from .base_video_reid_dataset import (BaseVideoReIDDataset,
                                      camera_pair_tracklets, check_split_id,
                                      natural_sort_key)
from .mars import load_int_matrix

_SEQUENCES = osp.join('i-LIDS-VID', 'sequences')
_SPLITS = osp.join('train-test people splits',
                   'train_test_splits_ilidsvid.mat')


def person_folders(cam_dir: str) -> List[str]:
    """Person folder names of a camera folder, naturally sorted."""
    if not osp.isdir(cam_dir):
        raise FileNotFoundError(f'the camera folder {cam_dir} does not exist')
    with os.scandir(cam_dir) as it:
        return sorted((e.name for e in it if e.is_dir()), key=natural_sort_key)


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
    Query and gallery keep the number of the person folder as pid.

    Args:
        data_root (str): The extracted release (e.g. ``'data/ilidsvid'``).
        split (str): ``'train'``, ``'query'`` or ``'gallery'``.
            Defaults to ``'train'``.
        split_id (int): Which of the 10 splits, 0..9. Defaults to 0.
        **kwargs: See :class:`BaseVideoReIDDataset`.
    """

    METAINFO = dict(dataset_name='iLIDSVID', num_cams=2)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 split_id: int = 0,
                 **kwargs) -> None:
        self.split_id = split_id
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
