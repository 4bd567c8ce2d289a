# Copyright (c) mmtfclip contributors. All rights reserved.
import hashlib
import json
import logging
import os
import os.path as osp
import re
import tempfile
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmtfclip.fileio import file_sha256
from .utils import default_cache_dir

#: Bumped whenever the cached index format or a parser's output changes, so
#: that caches written by an older version are never read.
CACHE_VERSION = 2


class BaseVideoReIDDataset(BaseDataset):
    """Base class of the video person re-identification datasets.

    A subclass parses one published layout into tracklets (frame paths
    relative to ``data_root`` in temporal order, the original person id, a
    0-based camera id); this class does the rest:

    - optionally cuts each tracklet into several items
      (:meth:`cut_tracklet`: the authors' iLIDS-VID windows, LS-VID training
      chunks), dropping those it cuts into nothing, and says so in the log;
    - relabels the training ids to ``0..N-1`` (query and gallery keep the
      original ids, which the metric compares);
    - refuses a camera id at or beyond ``metainfo['num_cams']``;
    - caches the parsed index as JSON in ``cache_dir``, keyed by a SHA-256
      fingerprint of the annotation files' contents and of the arguments
      that change the parse. Paths are stored relative to the data root, so
      a moved or re-mounted dataset reuses its cache, and nothing is ever
      written into the data root (it may be read-only). Where the parser
      lists folders (all but MARS, whose name lists give the frames), the
      cache also records the modification time of each frame folder and
      of its parent: a frame or person folder added, removed or renamed
      since makes the index parsed again;
    - logs the statistics table (subset | # ids | # tracklets | frames per
      tracklet min / max / mean).

    Each item of ``data_list`` is a dict with ``frame_paths`` (list of
    absolute paths, temporal order), ``pid`` (int), ``camid`` (int, 0-based),
    ``tracklet_id`` (int, index of the item within the split) and ``split``;
    an item cut from a tracklet also has ``source_tracklet`` (the index of
    the whole tracklet within the split) and ``first_frame`` (the index of
    its first frame in that tracklet). The metainfo holds ``dataset_name``,
    ``split``, ``num_pids`` and ``num_cams``.

    Junk tracklets (``pid == -1``) are dropped by the parsers; distractors
    (``pid == 0``) stay where the release puts them (MARS: in the gallery).

    Whether the query tracklets also join the gallery (the MARS evaluation
    code and the TF-CLIP authors) or not (torchreid) is decided by the
    metric's ``query_in_gallery``, not here: the datasets always return the
    query and the gallery of the release as published.

    Args:
        data_root (str): The extracted release. It comes from the config or
            the command line (``--cfg-options``), never from code.
        split (str): ``'train'``, ``'query'`` or ``'gallery'``.
            Defaults to ``'train'``.
        pipeline (Sequence[dict | callable]): The transforms.
            Defaults to ``()``.
        use_cache (bool): Read and write the parsed-index cache.
            Defaults to True.
        cache_dir (str, optional): Where the cache lives. Defaults to
            ``$MMTFCLIP_CACHE_DIR`` or ``~/.cache/mmtfclip/datasets``.
        metainfo (dict, optional): Overrides of the metainfo, e.g.
            ``dict(num_cams=8)``. Defaults to None.
        **kwargs: Other arguments of :class:`mmengine.dataset.BaseDataset`
            (``serialize_data``, ``lazy_init``, ``test_mode``, ...).
    """

    METAINFO: dict = dict(dataset_name='video ReID', num_cams=None)
    SPLITS: Tuple[str, ...] = ('train', 'query', 'gallery')
    #: Whether the parser finds frames by listing folders (so that a frame
    #: added to a folder changes the index).
    LISTS_FOLDERS: bool = True

    def __init__(self,
                 data_root: str,
                 split: str = 'train',
                 pipeline: Sequence = (),
                 use_cache: bool = True,
                 cache_dir: Optional[str] = None,
                 metainfo: Optional[dict] = None,
                 **kwargs) -> None:
        if not data_root:
            raise ValueError(
                f'{type(self).__name__} needs `data_root`: set it in the '
                'config or on the command line, e.g. --cfg-options '
                'train_dataloader.dataset.data_root=data/mars')
        if split not in self.SPLITS:
            raise ValueError(f'{type(self).__name__}: `split` must be one of '
                             f'{self.SPLITS}, got {split!r}')
        self.split = split
        # Frame paths are absolute (the data contract); '~' is expanded.
        data_root = osp.abspath(osp.expanduser(data_root))
        self.use_cache = use_cache
        self.cache_dir = cache_dir or default_cache_dir()
        self._user_metainfo = dict(metainfo or {})
        super().__init__(
            data_root=data_root,
            pipeline=list(pipeline),
            metainfo=metainfo,
            **kwargs)

    # ------------------------------------------------------------------
    # What a subclass provides.
    # ------------------------------------------------------------------
    def annotation_files(self) -> List[str]:
        """The files whose contents define the parsed index.

        Their SHA-256 digests key the cache: editing any of them invalidates
        it.

        Returns:
            list[str]: Absolute paths (each must exist).
        """
        raise NotImplementedError

    def cache_params(self) -> dict:
        """Arguments, besides the split, that change the parsed index.

        Returns:
            dict: JSON-serialisable values. Defaults to ``{}``.
        """
        return {}

    def parse_tracklets(self) -> Tuple[List[Tuple[List[str], int, int]], int]:
        """Parse the release for ``self.split``.

        Returns:
            tuple: ``(tracklets, num_cams)``; each tracklet is
            ``(frame paths relative to data_root, original pid, 0-based
            camid)`` with junk removed (a tracklet's paths may instead all
            be absolute), and ``num_cams`` the number of cameras of the
            whole release.
        """
        raise NotImplementedError

    def cut_tracklet(
            self, frames: List[str]) -> Optional[List[Tuple[int, List[str]]]]:
        """The items one tracklet becomes.

        Applied after the cache, so changing how tracklets are cut never
        needs a new parse.

        Args:
            frames (list[str]): The tracklet's frames, temporal order.

        Returns:
            list[tuple[int, list[str]]] | None: ``(index of the first
            frame, frames)`` per item, an empty list to drop the tracklet,
            or None (the default) to keep it whole as one item.
        """
        return None

    # ------------------------------------------------------------------
    # Shared machinery.
    # ------------------------------------------------------------------
    @property
    def dataset_name(self) -> str:
        return self._metainfo.get('dataset_name') or type(self).__name__

    def _fingerprint(self) -> str:
        digest = hashlib.sha256()
        header = dict(
            cls=type(self).__name__,
            version=CACHE_VERSION,
            split=self.split,
            params=self.cache_params())
        digest.update(json.dumps(header, sort_keys=True).encode())
        for path in self.annotation_files():
            rel = osp.relpath(path, self.data_root)
            digest.update(f'\n{rel}:{file_sha256(path)}'.encode())
        return digest.hexdigest()

    def _cache_path(self, fingerprint: str) -> str:
        name = re.sub(r'[^A-Za-z0-9_.-]+', '_', self.dataset_name)
        return osp.join(self.cache_dir,
                        f'{name}-{self.split}-{fingerprint[:24]}.json')

    def _folder_times(self, tracklets: list) -> Dict[str, int]:
        """Modification times of the frame folders and their parents."""
        if not self.LISTS_FOLDERS:
            return {}
        folders = {osp.dirname(frames[0]) for frames, _, _ in tracklets}
        folders |= {osp.dirname(f) for f in folders}
        times = {}
        for rel in sorted(folders):
            path = osp.join(self.data_root, rel)
            if osp.isdir(path):
                times[rel] = os.stat(path).st_mtime_ns
        return times

    def _changed_folder(self, times: Dict[str, int]) -> Optional[str]:
        for rel, mtime in times.items():
            path = osp.join(self.data_root, rel)
            try:
                if os.stat(path).st_mtime_ns != mtime:
                    return path
            except OSError:
                return path
        return None

    def _read_cache(self, path: str) -> Optional[dict]:
        if not osp.isfile(path):
            return None
        try:
            with open(path, encoding='utf-8') as f:
                cached = json.load(f)
        except (OSError, ValueError) as err:
            print_log(
                f'Ignoring the unreadable dataset cache {path}: {err}',
                logger='current',
                level=logging.WARNING)
            return None
        if not isinstance(cached, dict) or \
                cached.get('version') != CACHE_VERSION:
            return None
        changed = self._changed_folder(cached.get('folders', {}))
        if changed is not None:
            print_log(
                f'{self.dataset_name} ({self.split}): {changed} changed '
                f'since the index in {path} was written; parsing again.',
                logger='current')
            return None
        return cached

    def _write_cache(self, path: str, content: dict) -> None:
        try:
            os.makedirs(self.cache_dir, exist_ok=True)
            # Write then rename: ranks that parse at the same time never see
            # a half-written file.
            fd, tmp = tempfile.mkstemp(
                dir=self.cache_dir, prefix='.tmp-', suffix='.json')
            with os.fdopen(fd, 'w', encoding='utf-8') as f:
                json.dump(content, f, separators=(',', ':'))
            os.replace(tmp, path)
        except OSError as err:
            print_log(
                f'Could not write the dataset cache to {self.cache_dir} '
                f'({err}); the index will be parsed again next time. Set '
                '$MMTFCLIP_CACHE_DIR to a writable folder to avoid that.',
                logger='current',
                level=logging.WARNING)

    def _load_index(self) -> Tuple[list, int]:
        if not osp.isdir(self.data_root):
            raise FileNotFoundError(
                f'{type(self).__name__}: data_root {self.data_root!r} is not '
                'a folder. See docs/dataset_preparation.md for the layout.')
        cache_file = None
        if self.use_cache:
            cache_file = self._cache_path(self._fingerprint())
            cached = self._read_cache(cache_file)
            if cached is not None:
                print_log(
                    f'{self.dataset_name} ({self.split}): parsed index read '
                    f'from {cache_file}',
                    logger='current')
                return cached['tracklets'], cached['num_cams']
        tracklets, num_cams = self.parse_tracklets()
        tracklets = [[list(frames), int(pid),
                      int(camid)] for frames, pid, camid in tracklets]
        if cache_file is not None:
            self._write_cache(
                cache_file,
                dict(
                    version=CACHE_VERSION,
                    tracklets=tracklets,
                    num_cams=int(num_cams),
                    folders=self._folder_times(tracklets)))
        return tracklets, int(num_cams)

    def _check_cameras(self, tracklets: list, num_cams: Optional[int]) -> None:
        if num_cams is None:
            return
        for frames, _, camid in tracklets:
            if not 0 <= camid < num_cams:
                source = 'metainfo' if self._user_metainfo.get(
                    'num_cams') is not None else 'the release'
                raise ValueError(
                    f'{self.dataset_name} ({self.split}) under '
                    f'{self.data_root}: the tracklet of '
                    f'{osp.join(self.data_root, frames[0])} has camera id '
                    f'{camid} (0-based), but num_cams = {num_cams} '
                    f'({source}): camera ids must lie in 0..{num_cams - 1}')

    def load_data_list(self) -> List[dict]:
        """Parse (or read from the cache), cut and relabel the tracklets.

        Returns:
            list[dict]: One dict per item (see the class docstring).
        """
        tracklets, num_cams = self._load_index()
        if not tracklets:
            raise ValueError(
                f'{self.dataset_name} ({self.split}) under {self.data_root} '
                'has no tracklet.')
        if self._user_metainfo.get('num_cams') is not None:
            num_cams = self._user_metainfo['num_cams']
        else:
            num_cams = num_cams or self.METAINFO.get('num_cams')
        self._check_cameras(tracklets, num_cams)

        root = self.data_root.rstrip('/\\') + os.sep
        items = []
        cut_any = False
        kept = set()
        for source, (frames, pid, camid) in enumerate(tracklets):
            # A tracklet's paths are all relative or all absolute (the
            # parsers guarantee it); one test per tracklet keeps this fast.
            if not osp.isabs(frames[0]):
                frames = [root + f for f in frames]
            pieces = self.cut_tracklet(frames)
            if pieces is None:
                items.append(dict(frame_paths=frames, pid=pid, camid=camid))
                kept.add(source)
                continue
            cut_any = True
            if pieces:
                kept.add(source)
            for first, piece in pieces:
                items.append(
                    dict(
                        frame_paths=piece,
                        pid=pid,
                        camid=camid,
                        source_tracklet=source,
                        first_frame=first))
        if not items:
            raise ValueError(
                f'{self.dataset_name} ({self.split}) under {self.data_root}: '
                f'cutting the {len(tracklets)} tracklets left no item')

        pids = sorted({item['pid'] for item in items})
        lost = sorted({pid for _, pid, _ in tracklets} - set(pids))
        if lost:
            print_log(
                f'{self.dataset_name} ({self.split}): cutting the '
                f'tracklets removed every tracklet of {len(lost)} persons '
                f'(original ids {lost[:10]}); they are not in the label '
                'space.',
                logger='current',
                level=logging.WARNING)
        label_of = {pid: label for label, pid in enumerate(pids)}
        for index, item in enumerate(items):
            if self.split == 'train':
                item['pid'] = label_of[item['pid']]
            item.update(tracklet_id=index, split=self.split)

        if self._user_metainfo.get('num_cams') is None:
            self._metainfo['num_cams'] = num_cams
        self._metainfo.update(
            dataset_name=self.dataset_name,
            split=self.split,
            num_pids=len(pids))
        cut = (len(tracklets), len(tracklets) - len(kept)) if cut_any else None
        self._log_statistics(items, len(pids), cut)
        return items

    def _log_statistics(self, items: list, num_pids: int,
                        cut: Optional[Tuple[int, int]]) -> None:
        lengths = np.array([len(item['frame_paths']) for item in items])
        lines = [
            f'{self.dataset_name} loaded from {self.data_root}',
            '  ' + '-' * 66,
            '  subset   | # ids | # tracklets | # frames | '
            'frames per tracklet',
            '  ' + '-' * 66,
            f'  {self.split:<8} | {num_pids:5d} | {len(items):11d} | '
            f'{int(lengths.sum()):8d} | {int(lengths.min())} ~ '
            f'{int(lengths.max())}, mean {lengths.mean():.1f}',
            '  ' + '-' * 66,
        ]
        if cut is not None:
            num_tracklets, dropped = cut
            lines.append(f'  {len(items)} items cut from {num_tracklets} '
                         f'tracklets ({dropped} dropped: '
                         f'{self.cut_description()})')
        print_log('\n'.join(lines), logger='current')

    def cut_description(self) -> str:
        """How :meth:`cut_tracklet` cuts, for the log.

        Returns:
            str: A short phrase.
        """
        return 'cut by cut_tracklet'

    def get_pids(self) -> List[int]:
        """The pid of every item, in index order (for samplers).

        Returns:
            list[int]: ``pid`` of each item.
        """
        return [self.get_data_info(i)['pid'] for i in range(len(self))]

    def __repr__(self) -> str:
        size = len(self) if self._fully_initialized else 'not loaded'
        return (f'{type(self).__name__}(data_root={self.data_root!r}, '
                f'split={self.split!r}, num_tracklets={size})')
