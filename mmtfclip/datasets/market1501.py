# Copyright (c) mmtfclip contributors. All rights reserved.
import hashlib
import os
import os.path as osp
import re
from typing import List, Tuple

from mmtfclip.registry import DATASETS
from .base_video_reid_dataset import BaseVideoReIDDataset

# ``0002_c1s1_000451_03.jpg``: person (``-1`` for junk, ``0000`` for
# distractors), camera digit, then sequence, frame and box.
_NAME = re.compile(r'^([-\d]+)_c(\d)')
_SPLIT_DIRS = dict(
    train='bounding_box_train', query='query', gallery='bounding_box_test')
NUM_CAMS = 6


def list_jpgs(folder: str, who: str) -> List[str]:
    """Sorted ``.jpg`` file names of a folder (the release's images)."""
    if not osp.isdir(folder):
        raise FileNotFoundError(
            f'{who}: the folder {folder} does not exist. See '
            'docs/dataset_preparation.md for the layout.')
    with os.scandir(folder) as it:
        return sorted(e.name for e in it
                      if e.is_file() and e.name.endswith('.jpg'))


@DATASETS.register_module()
class Market1501(BaseVideoReIDDataset):
    """Market-1501 (Zheng et al., ICCV 2015), an image ReID dataset.

    Each image is a tracklet of one frame (``frame_paths`` of length 1), so
    the pipelines, the model, the metric and the tools of the video
    datasets work unchanged. Layout under ``data_root`` (the extracted
    ``Market-1501-v15.09.15``)::

        bounding_box_train/<pid4>_c<cam>s<seq>_<frame6>_<box2>.jpg
        query/...
        bounding_box_test/...   (``-1_...``: junk, ``0000_...``: distractors)

    Junk images (pid -1) are dropped, distractors (pid 0) stay in the
    gallery, as torchreid and the CLIP-ReID code read it; images are taken in
    file-name order. Full-size statistics: train 751 ids / 12,936 images,
    query 750 ids / 3,368 images, gallery 751 ids (+ distractors) / 15,913
    images; 6 cameras. Evaluate with ``ReIDMetric(query_in_gallery=False)``
    (the image-ReID protocol: the query is not in the gallery; same id and
    camera discarded).

    The image folder is the index: the parse is a listing, so the cache is
    off by default (with ``use_cache=True`` its key is the listing).

    Args:
        data_root (str): The extracted release.
        split (str): ``'train'``, ``'query'`` or ``'gallery'``.
            Defaults to ``'train'``.
        use_cache (bool): Cache the parsed index. Defaults to False.
        **kwargs: See :class:`BaseVideoReIDDataset`.
    """

    METAINFO = dict(dataset_name='Market1501', num_cams=None)

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 use_cache: bool = False,
                 **kwargs) -> None:
        super().__init__(
            data_root=data_root, split=split, use_cache=use_cache, **kwargs)

    @property
    def _folder(self) -> str:
        return _SPLIT_DIRS[self.split]

    def annotation_files(self) -> List[str]:
        return []

    def cache_params(self) -> dict:
        names = list_jpgs(osp.join(self.data_root, self._folder), 'Market1501')
        return dict(
            listing=hashlib.sha256('\n'.join(names).encode()).hexdigest())

    def parse_tracklets(self) -> Tuple[list, int]:
        folder = osp.join(self.data_root, self._folder)
        tracklets = []
        for name in list_jpgs(folder, 'Market1501'):
            match = _NAME.match(name)
            where = f'Market1501: {osp.join(folder, name)}'
            if match is None:
                raise ValueError(f'{where}: the name does not start with '
                                 '<pid>_c<camera>')
            pid, cam = int(match.group(1)), int(match.group(2))
            if pid == -1:
                continue
            if not 0 <= pid <= 1501 or not 1 <= cam <= NUM_CAMS:
                raise ValueError(f'{where}: pid {pid} or camera {cam} is out '
                                 f'of range (0..1501, 1..{NUM_CAMS})')
            tracklets.append(([f'{self._folder}/{name}'], pid, cam - 1))
        return tracklets, NUM_CAMS
