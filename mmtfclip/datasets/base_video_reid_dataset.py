# Copyright (c) mmtfclip contributors. All rights reserved.
import hashlib
import json
import logging
import os
import os.path as osp
import re
import tempfile
from typing import List, Optional, Sequence, Tuple

import numpy as np
from mmengine.dataset import BaseDataset
from mmengine.logging import print_log

from mmtfclip.fileio import file_sha256

#: Bumped whenever the cached index format or a parser's output changes, so
#: that caches written by an older version are never read.
CACHE_VERSION = 1

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')


def default_cache_dir() -> str:
    """The folder that holds parsed dataset indices.

    ``$MMTFCLIP_CACHE_DIR`` when set, else ``~/.cache/mmtfclip/datasets``
    (under ``$XDG_CACHE_HOME`` when that is set). It never lies inside the
    data root, which may be read-only.

    Returns:
        str: The cache folder (not created here).
    """
    if os.environ.get('MMTFCLIP_CACHE_DIR'):
        return osp.expanduser(os.environ['MMTFCLIP_CACHE_DIR'])
    base = os.environ.get('XDG_CACHE_HOME') or osp.join(
        osp.expanduser('~'), '.cache')
    return osp.join(base, 'mmtfclip', 'datasets')


def natural_sort_key(name: str) -> list:
    """Sort key that orders ``f2.png`` before ``f10.png``.

    Args:
        name (str): A file name.

    Returns:
        list: Alternating text and integer parts of the name.
    """
    return [int(t) if t.isdigit() else t for t in re.split(r'(\d+)', name)]


def list_frames(folder: str) -> List[str]:
    """The image files of a folder in natural (temporal) order.

    Args:
        folder (str): The folder.

    Returns:
        list[str]: File names (not paths), naturally sorted.
    """
    with os.scandir(folder) as it:
        names = [
            e.name for e in it
            if e.is_file() and e.name.lower().endswith(IMG_EXTENSIONS)
        ]
    return sorted(names, key=natural_sort_key)


class BaseVideoReIDDataset(BaseDataset):
    """Base class of the video person re-identification datasets.

    A subclass parses one published layout into tracklets (frame paths
    relative to ``data_root`` in temporal order, the original person id, a
    0-based camera id); this class does the rest:

    - relabels the training ids to ``0..N-1`` (query and gallery keep the
      original ids, which the metric compares);
    - caches the parsed index as JSON in ``cache_dir``, keyed by a SHA-256
      fingerprint of the annotation files' contents and of the arguments
      that change the parse. Paths are stored relative to the data root, so
      a moved or re-mounted dataset reuses its cache, and nothing is ever
      written into the data root (it may be read-only);
    - logs the statistics table (subset | # ids | # tracklets | frames per
      tracklet min / max / mean).

    Each item of ``data_list`` is a dict with ``frame_paths`` (list of
    absolute paths, temporal order), ``pid`` (int), ``camid`` (int, 0-based),
    ``tracklet_id`` (int, index within the split) and ``split``. The
    metainfo holds ``dataset_name``, ``split``, ``num_pids`` and
    ``num_cams``.

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
        if cached.get('version') != CACHE_VERSION:
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
                    num_cams=int(num_cams)))
        return tracklets, int(num_cams)

    def load_data_list(self) -> List[dict]:
        """Parse (or read from the cache) and relabel the tracklets.

        Returns:
            list[dict]: One dict per tracklet (see the class docstring).
        """
        tracklets, num_cams = self._load_index()
        if not tracklets:
            raise ValueError(
                f'{self.dataset_name} ({self.split}) under {self.data_root} '
                'has no tracklet.')
        pids = sorted({pid for _, pid, _ in tracklets})
        if self.split == 'train':
            label_of = {pid: label for label, pid in enumerate(pids)}
        root = self.data_root.rstrip('/\\') + os.sep
        data_list = []
        for tracklet_id, (frames, pid, camid) in enumerate(tracklets):
            # A tracklet's paths are all relative or all absolute (the
            # parsers guarantee it); one test per tracklet keeps this fast.
            if not osp.isabs(frames[0]):
                frames = [root + f for f in frames]
            data_list.append(
                dict(
                    frame_paths=frames,
                    pid=label_of[pid] if self.split == 'train' else pid,
                    camid=camid,
                    tracklet_id=tracklet_id,
                    split=self.split))

        if self._user_metainfo.get('num_cams') is None:
            self._metainfo['num_cams'] = num_cams
        self._metainfo.update(
            dataset_name=self.dataset_name,
            split=self.split,
            num_pids=len(pids))
        self._log_statistics(tracklets, len(pids))
        return data_list

    def _log_statistics(self, tracklets: list, num_pids: int) -> None:
        lengths = np.array([len(frames) for frames, _, _ in tracklets])
        lines = [
            f'{self.dataset_name} loaded from {self.data_root}',
            '  ' + '-' * 66,
            '  subset   | # ids | # tracklets | # frames | '
            'frames per tracklet',
            '  ' + '-' * 66,
            f'  {self.split:<8} | {num_pids:5d} | {len(tracklets):11d} | '
            f'{int(lengths.sum()):8d} | {int(lengths.min())} ~ '
            f'{int(lengths.max())}, mean {lengths.mean():.1f}',
            '  ' + '-' * 66,
        ]
        print_log('\n'.join(lines), logger='current')

    def get_pids(self) -> List[int]:
        """The pid of every tracklet, in index order (for samplers).

        Returns:
            list[int]: ``pid`` of each item.
        """
        return [self.get_data_info(i)['pid'] for i in range(len(self))]

    def __repr__(self) -> str:
        size = len(self) if self._fully_initialized else 'not loaded'
        return (f'{type(self).__name__}(data_root={self.data_root!r}, '
                f'split={self.split!r}, num_tracklets={size})')


def check_split_id(split_id: int, num_splits: int, source: str) -> None:
    """Raise a clear error for a split index out of range.

    Args:
        split_id (int): The requested split.
        num_splits (int): How many splits ``source`` defines.
        source (str): The file (or rule) the splits come from.
    """
    if not isinstance(split_id, (int, np.integer)) or not \
            0 <= split_id < num_splits:
        raise ValueError(f'split_id must be in 0..{num_splits - 1} '
                         f'({source} has {num_splits} splits), got '
                         f'{split_id!r}')


def check_query_rows(rows: np.ndarray, num_rows: int, path: str, variable: str,
                     rows_of: str) -> np.ndarray:
    """Check 1-based query indices and return them 0-based.

    Args:
        rows (np.ndarray): The 1-based indices as read from the file.
        num_rows (int): How many rows they index.
        path (str): The file they come from, for the error message.
        variable (str): Their variable name in the file.
        rows_of (str): What they index, for the error message.

    Returns:
        np.ndarray: The 0-based indices, int64.

    Raises:
        ValueError: Naming the file, the variable and the offending entry,
            for an index out of range or a repeated one.
    """
    bad = np.flatnonzero((rows < 1) | (rows > num_rows))
    if bad.size:
        pos = int(bad[0])
        raise ValueError(
            f'{path}: {variable}[{pos}] = {int(rows[pos])} is out of range '
            f'1..{num_rows} ({rows_of})')
    values, counts = np.unique(rows, return_counts=True)
    if (counts > 1).any():
        raise ValueError(f'{path}: {variable} repeats the rows '
                         f'{values[counts > 1][:10].tolist()}')
    return rows.astype(np.int64) - 1


def pid_from_folder(name: str, source: str) -> int:
    """The person id in a folder name such as ``person001``.

    Args:
        name (str): The folder name.
        source (str): Where the name comes from, for the error message.

    Returns:
        int: The digits of the name as an integer.
    """
    digits = re.findall(r'\d+', name)
    if not digits:
        raise ValueError(f'{source}: cannot read a person id from the folder '
                         f'name {name!r}')
    return int(digits[-1])


def camera_pair_tracklets(data_root: str, names: Sequence[str],
                          cam_dirs: Sequence[str], split: str, source: str,
                          who: str) -> List[tuple]:
    """Tracklets of a two-camera dataset (one folder per person and camera).

    The protocol of iLIDS-VID and PRID-2011: training uses both cameras of
    the training persons, the query is camera 1 of the test persons and the
    gallery camera 2.

    Args:
        data_root (str): The data root.
        names (Sequence[str]): The person folders of the split, in order.
        cam_dirs (Sequence[str]): The two camera folders, relative to the
            data root.
        split (str): ``'train'``, ``'query'`` or ``'gallery'``.
        source (str): Where the names come from, for error messages.
        who (str): What is being read, for error messages.

    Returns:
        list[tuple]: ``(relative frame paths, pid, camid)`` per tracklet.
    """
    cams = {'train': (0, 1), 'query': (0, ), 'gallery': (1, )}[split]
    tracklets = []
    for name in names:
        pid = pid_from_folder(name, source)
        for camid in cams:
            rel = f'{cam_dirs[camid]}/{name}'
            frames = frames_of(osp.join(data_root, rel), rel, who)
            tracklets.append((frames, pid, camid))
    return tracklets


def frames_of(folder: str, rel_folder: str, who: str) -> List[str]:
    """Relative frame paths of a person folder, in temporal order.

    Args:
        folder (str): Absolute folder path.
        rel_folder (str): The same folder relative to the data root.
        who (str): What the folder is, for the error message.

    Returns:
        list[str]: ``rel_folder/<frame>`` for each image, naturally sorted.
    """
    if not osp.isdir(folder):
        raise FileNotFoundError(f'{who}: the folder {folder} does not exist')
    names = list_frames(folder)
    if not names:
        raise FileNotFoundError(f'{who}: the folder {folder} has no image')
    return [f'{rel_folder}/{n}' for n in names]
