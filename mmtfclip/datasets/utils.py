# Copyright (c) mmtfclip contributors. All rights reserved.
"""What the dataset parsers share: reading annotation files strictly,
listing frames, and the checks that name the file and row at fault."""
import os
import os.path as osp
import re
from typing import Dict, List, Sequence, Tuple

import numpy as np

IMG_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.tif', '.tiff', '.webp')

# Byte-order marks, longest first (the UTF-32 LE mark starts with UTF-16
# LE's).
_BOMS = ((b'\xff\xfe\x00\x00', 'UTF-32 LE'),
         (b'\x00\x00\xfe\xff', 'UTF-32 BE'), (b'\xef\xbb\xbf', 'UTF-8'),
         (b'\xff\xfe', 'UTF-16 LE'), (b'\xfe\xff', 'UTF-16 BE'))


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


def read_text(path: str) -> str:
    """The content of an annotation file, strictly UTF-8 without a BOM.

    The published releases are plain ASCII. A byte-order mark means the
    file was re-saved by an editor, which may have changed more than the
    encoding, and it would become part of the first name or path; bytes
    that are not UTF-8 would be guessed at by any lenient decoding. Both are
    refused so that the file is looked at rather than half-read.

    Args:
        path (str): The file.

    Returns:
        str: Its text.

    Raises:
        ValueError: Naming the file (and for undecodable bytes the line
            and byte offset).
    """
    with open(path, 'rb') as f:
        data = f.read()
    for mark, name in _BOMS:
        if data.startswith(mark):
            raise ValueError(
                f'{path} starts with a {name} byte-order mark; annotation '
                'files must be plain UTF-8 without one, as published. '
                'Re-save it as UTF-8 without BOM (for a UTF-8 mark: '
                f"sed -i '1s/^\\xEF\\xBB\\xBF//' {path}) and check that "
                'nothing else was changed.')
    try:
        return data.decode('utf-8')
    except UnicodeDecodeError as err:
        line = data.count(b'\n', 0, err.start) + 1
        raise ValueError(
            f'{path}, line {line}: the byte {data[err.start:err.start + 1]!r}'
            f' at offset {err.start} of the file is not UTF-8; annotation '
            'files must be UTF-8 text as published') from None


def read_text_lines(path: str) -> List[Tuple[int, str]]:
    """The non-empty lines of an annotation file, stripped.

    Args:
        path (str): The file (see :func:`read_text` for what is refused).

    Returns:
        list[tuple[int, str]]: ``(1-based line number, text)`` per line.
    """
    lines = read_text(path).splitlines()
    return [(number, line.strip()) for number, line in enumerate(lines, 1)
            if line.strip()]


def load_mat(path: str) -> Dict[str, np.ndarray]:
    """The variables of a MATLAB (v4-v7.2) file.

    Args:
        path (str): The ``.mat`` file.

    Returns:
        dict: Its variables.

    Raises:
        ValueError: Naming the file when it cannot be read (truncated,
            corrupt, or not a ``.mat`` file).
    """
    from scipy.io import loadmat
    try:
        return loadmat(path)
    except Exception as err:  # scipy raises many types for corrupt files
        raise ValueError(f'{path} is not a readable MATLAB file (corrupt or '
                         f'truncated?): {type(err).__name__}: {err}') from err


def load_int_matrix(path: str, key: str) -> np.ndarray:
    """Load an integer-valued matrix from a MATLAB file.

    The published ``.mat`` files store the values as doubles; a non-integer
    or non-finite value is an error rather than silently truncated.

    Args:
        path (str): The ``.mat`` file.
        key (str): The variable name.

    Returns:
        np.ndarray: The matrix as int64.
    """
    content = load_mat(path)
    if key not in content:
        found = sorted(k for k in content if not k.startswith('__'))
        raise KeyError(f'{path} has no variable {key!r} (found {found})')
    values = np.asarray(content[key])
    if not np.issubdtype(values.dtype, np.number):
        raise ValueError(f'{path}: {key!r} is not numeric '
                         f'({values.dtype})')
    if not np.isfinite(values).all():
        raise ValueError(f'{path}: {key!r} holds non-finite values')
    as_int = values.astype(np.int64)
    if not np.array_equal(as_int, values):
        raise ValueError(f'{path}: {key!r} holds non-integer values')
    return as_int


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


def person_folders(cam_dir: str) -> List[str]:
    """Person folder names of a camera folder, naturally sorted.

    Args:
        cam_dir (str): The camera folder.

    Returns:
        list[str]: The names of its sub-folders.
    """
    if not osp.isdir(cam_dir):
        raise FileNotFoundError(f'the camera folder {cam_dir} does not exist')
    with os.scandir(cam_dir) as it:
        return sorted((e.name for e in it if e.is_dir()), key=natural_sort_key)


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


def check_unique_rows(keys: Sequence, where: Sequence[str], what: str) -> None:
    """Refuse a repeated row of an annotation file.

    Args:
        keys (Sequence): One hashable key per row (what makes two rows the
            same tracklet).
        where (Sequence[str]): Each row's location, ``'<file>, row N'``.
        what (str): What a key is, for the message.

    Raises:
        ValueError: Naming both rows.
    """
    first: dict = {}
    for key, place in zip(keys, where):
        if key in first:
            raise ValueError(f'{place} repeats {first[key]} (the same {what} '
                             f'{key!r}): a tracklet would be counted twice')
        first[key] = place


def check_person_split(train: Sequence[str], test: Sequence[str],
                       source: str) -> None:
    """Refuse a split that repeats a person or puts one in train and test.

    Args:
        train (Sequence[str]): The training persons, as the file names them.
        test (Sequence[str]): The test persons.
        source (str): The file and split, for the message.

    Raises:
        ValueError: Naming the person and where it appears.
    """
    for key, names in (('train', train), ('test', test)):
        seen = set()
        for pos, name in enumerate(names):
            if name in seen:
                raise ValueError(
                    f'{source}: "{key}" names the person {name!r} twice '
                    f'(again at position {pos + 1})')
            seen.add(name)
    both = sorted(set(train) & set(test), key=str)
    if both:
        raise ValueError(f'{source}: the persons {both[:10]} are in both '
                         '"train" and "test"; a split must keep them apart')


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


def sliding_windows(num_frames: int, length: int,
                    stride: int) -> List[Tuple[int, int]]:
    """Windows of ``length`` consecutive frames, ``stride`` apart.

    The rule of the TF-CLIP authors' iLIDS-VID sequences
    (``datasets/set/datasequence.py``, ``_pluckseq``): windows start at
    ``0, stride, 2 * stride, ...`` while the start is *below*
    ``num_frames - length``, so the window that would end exactly on the
    last frame is not taken and the frames after the last window are never
    used; a tracklet of at most ``length`` frames gives one window of all
    its frames.

    Args:
        num_frames (int): Frames of the tracklet.
        length (int): Frames per window.
        stride (int): Frames between the starts of two windows.

    Returns:
        list[tuple[int, int]]: ``(start, end)`` per window, end exclusive
        (``min(start + length, num_frames)``).
    """
    windows = [(start, start + length)
               for start in range(0, num_frames - length, stride)]
    return windows or [(0, num_frames)]


def chunk_bounds(num_frames: int, length: int) -> List[Tuple[int, int]]:
    """Cut a tracklet into chunks of ``length`` frames, the remainder
    joining the last chunk.

    The rule of the TF-CLIP authors' LS-VID training set
    (``datasets/set/lsvid.py``, ``sampling_step``): ``num_frames //
    length`` chunks, the last one from its start to the end; no chunk when
    ``num_frames < length``.

    Args:
        num_frames (int): Frames of the tracklet.
        length (int): Frames per chunk.

    Returns:
        list[tuple[int, int]]: ``(start, end)`` per chunk, end exclusive;
        empty for a tracklet shorter than ``length``.
    """
    count = num_frames // length
    return [(k * length, num_frames if k == count - 1 else (k + 1) * length)
            for k in range(count)]
