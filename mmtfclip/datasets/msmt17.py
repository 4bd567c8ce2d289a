# Copyright (c) mmtfclip contributors. All rights reserved.
import os.path as osp
from typing import List, Tuple

from mmtfclip.registry import DATASETS
from .base_video_reid_dataset import BaseVideoReIDDataset

NUM_CAMS = 15
# The image folders of the two published versions (train, test).
VERSIONS = dict(
    MSMT17_V1=('train', 'test'), MSMT17_V2=('mask_train_v2', 'mask_test_v2'))


@DATASETS.register_module()
class MSMT17(BaseVideoReIDDataset):
    """MSMT17 (Wei et al., CVPR 2018), V1 or V2, an image ReID dataset.

    Each image is a tracklet of one frame, as for :class:`Market1501`.
    Layout under ``data_root`` (the extracted ``MSMT17_V1`` or
    ``MSMT17_V2``; the version is told by its image folders)::

        train/<pid4>/<pid4>_<n3>_<cam2>_<date+time>_<n4>_<n>.jpg
        test/<pid4>/...                   (V2: mask_train_v2/, mask_test_v2/)
        list_train.txt  list_val.txt      "<path under train/> <pid>" lines
        list_query.txt  list_gallery.txt  "<path under test/> <pid>" lines

    The camera is the third ``_`` field of the file name (1-based). The
    training set is ``list_train.txt`` plus ``list_val.txt`` (the val images
    are of the training identities), as CLIP-ReID and TransReID train;
    ``include_val=False`` gives ``list_train.txt`` alone (torchreid's
    default). Full-size statistics (V1): train 1,041 ids / 32,621 images
    with val (30,248 without), query 3,060 ids / 11,659 images, gallery
    3,060 ids / 82,161 images; 15 cameras. Evaluate with
    ``ReIDMetric(query_in_gallery=False)``.

    A line that is not ``<path> <pid>``, or a camera out of 1..15, raises an
    error naming the list file and the line.

    Args:
        data_root (str): The extracted release.
        split (str): ``'train'``, ``'query'`` or ``'gallery'``.
            Defaults to ``'train'``.
        include_val (bool): Add ``list_val.txt`` to the training set.
            Defaults to True.
        **kwargs: See :class:`BaseVideoReIDDataset`.
    """

    METAINFO = dict(dataset_name='MSMT17', num_cams=None)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 include_val: bool = True,
                 **kwargs) -> None:
        self.include_val = include_val
        super().__init__(data_root=data_root, split=split, **kwargs)

    def _version(self) -> Tuple[str, str, str]:
        """(version, train folder, test folder) of the release."""
        for version, (train, test) in VERSIONS.items():
            if osp.isdir(osp.join(self.data_root, train)) and osp.isdir(
                    osp.join(self.data_root, test)):
                return version, train, test
        expected = ', '.join(f'{t}/ + {s}/ ({v})'
                             for v, (t, s) in VERSIONS.items())
        raise FileNotFoundError(
            f'MSMT17: {self.data_root} holds neither image layout '
            f'({expected}). See docs/dataset_preparation.md.')

    def _lists(self) -> List[str]:
        names = dict(
            train=['list_train.txt'] +
            (['list_val.txt'] if self.include_val else []),
            query=['list_query.txt'],
            gallery=['list_gallery.txt'])[self.split]
        return [osp.join(self.data_root, n) for n in names]

    def annotation_files(self) -> List[str]:
        paths = self._lists()
        missing = [p for p in paths if not osp.isfile(p)]
        if missing:
            raise FileNotFoundError(
                f'MSMT17: missing list files {missing}. See '
                'docs/dataset_preparation.md for the layout.')
        return paths

    def cache_params(self) -> dict:
        return dict(version=self._version()[0], include_val=self.include_val)

    def parse_tracklets(self) -> Tuple[list, int]:
        _, train_dir, test_dir = self._version()
        folder = train_dir if self.split == 'train' else test_dir
        tracklets = []
        for path in self.annotation_files():
            with open(path, encoding='utf-8') as f:
                for number, line in enumerate(f, 1):
                    if not line.strip():
                        continue
                    where = f'{path}, line {number}'
                    fields = line.split()
                    try:
                        rel, pid = fields[0], int(fields[1])
                        cam = int(osp.basename(rel).split('_')[2])
                    except (IndexError, ValueError):
                        raise ValueError(
                            f'{where}: expected "<pid>/<pid>_<n>_<camera>_'
                            f'..._.jpg <pid>", got {line.strip()!r}') from None
                    if len(fields) != 2 or pid < 0:
                        raise ValueError(
                            f'{where}: expected "<path> <pid>" '
                            f'with pid >= 0, got {line.strip()!r}')
                    if not 1 <= cam <= NUM_CAMS:
                        raise ValueError(f'{where}: camera {cam} is out of '
                                         f'1..{NUM_CAMS}')
                    tracklets.append(([f'{folder}/{rel}'], pid, cam - 1))
        return tracklets, NUM_CAMS
