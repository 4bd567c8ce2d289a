# Copyright (c) mmtfclip contributors. All rights reserved.
"""Reading and writing the project's files without trusting them.

Every file the project reads with ``torch.load`` goes through
:func:`load_file`: tensors, numbers, strings and containers only
(``weights_only=True``), and a message that names the file when it is
missing, empty, truncated or holds anything else. Files the project writes
(checkpoints, caches) go through :func:`save_file`: written to a temporary
file in the same folder and renamed, so that a killed run never leaves half
a file, and stamped with a content digest that :func:`load_file` checks,
since torch does not check the zip records' CRC and a flipped bit otherwise
reads as a different number.
"""
import hashlib
import io
import os
import os.path as osp
import pickle
import tempfile
import zipfile
from typing import Any, Optional

import numpy as np
import torch

#: Top-level key of a saved dict that holds its content digest.
DIGEST_KEY = 'mmtfclip_sha256'


class UnsafeFileError(RuntimeError):
    """A file is missing, damaged, or holds more than plain data."""


def _update_digest(hasher, obj: Any) -> None:
    """Feed a canonical description of ``obj`` into ``hasher``."""
    if isinstance(obj, torch.Tensor):
        tensor = obj.detach().cpu().contiguous()
        hasher.update(f'T{tensor.dtype}{tuple(tensor.shape)}'.encode())
        if tensor.numel():
            # Every dtype, bool and the float8 kinds included, as raw bytes.
            hasher.update(tensor.reshape(-1).view(torch.uint8).numpy())
    elif isinstance(obj, np.ndarray):
        array = np.ascontiguousarray(obj)
        hasher.update(f'A{array.dtype.str}{array.shape}'.encode())
        hasher.update(array.tobytes())
    elif isinstance(obj, dict):
        hasher.update(f'D{len(obj)}'.encode())
        for key in obj:
            _update_digest(hasher, key)
            _update_digest(hasher, obj[key])
    elif isinstance(obj, (list, tuple)):
        hasher.update(f'{type(obj).__name__[0]}{len(obj)}'.encode())
        for item in obj:
            _update_digest(hasher, item)
    else:
        hasher.update(f'V{type(obj).__name__}:{obj!r}'.encode())


def content_digest(obj: Any) -> str:
    """SHA-256 of the content of ``obj`` (tensors' bytes, keys and values).

    A dict's :data:`DIGEST_KEY` entry is left out at the top level, so the
    digest of a stamped dict equals the digest it was stamped with.

    Args:
        obj: Tensors, numpy arrays, numbers, strings and (nested) dicts,
            lists and tuples.

    Returns:
        str: The hex digest.
    """
    hasher = hashlib.sha256()
    if isinstance(obj, dict) and DIGEST_KEY in obj:
        obj = {k: v for k, v in obj.items() if k != DIGEST_KEY}
    _update_digest(hasher, obj)
    return hasher.hexdigest()


def file_sha256(path: str, chunk_size: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    hasher = hashlib.sha256()
    with open(path, 'rb') as f:
        for chunk in iter(lambda: f.read(chunk_size), b''):
            hasher.update(chunk)
    return hasher.hexdigest()


def atomic_write_bytes(data: bytes, path: str) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename."""
    folder = osp.dirname(osp.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f'.{osp.basename(path)}.', suffix='.tmp', dir=folder)
    try:
        with os.fdopen(fd, 'wb') as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if osp.exists(tmp):
            os.remove(tmp)
        raise


def save_file(obj: Any, path: str, digest: bool = True) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically, with its digest.

    Args:
        obj: What to save; a dict gets a :data:`DIGEST_KEY` entry (the
            caller's dict is not modified).
        path (str): Destination; its folder is created.
        digest (bool): Stamp a dict with :func:`content_digest`.
            Defaults to True.
    """
    if digest and isinstance(obj, dict):
        obj = dict(obj)
        obj[DIGEST_KEY] = content_digest(obj)
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(buffer.getvalue(), path)


def load_file(path: str,
              map_location: Optional[Any] = 'cpu',
              what: str = 'file',
              check_digest: bool = True) -> Any:
    """Read a ``torch.save`` file as plain data, never running its code.

    Args:
        path (str): The file.
        map_location (optional): As for :func:`torch.load`.
            Defaults to ``'cpu'``.
        what (str): What the file is meant to be, for the messages (e.g.
            ``'checkpoint'``). Defaults to ``'file'``.
        check_digest (bool): Verify a :data:`DIGEST_KEY` entry when there
            is one. Defaults to True.

    Returns:
        The object in the file.

    Raises:
        FileNotFoundError: If there is no such file.
        UnsafeFileError: If the file is empty, truncated or corrupt, holds
            more than tensors and plain containers (the message names the
            type it would have had to build), or its content no longer
            matches its digest.
    """
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'The {what} {path} does not exist.')
    if osp.getsize(path) == 0:
        raise UnsafeFileError(f'The {what} {path} is empty (0 bytes).')
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeFileError(
            f'The {what} {path} holds more than tensors, numbers, strings '
            'and containers, so it is not read (reading it could run code '
            f'planted in it). torch says: {str(e).splitlines()[0]}') from e
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError) as e:
        raise UnsafeFileError(
            f'The {what} {path} is truncated or corrupt and cannot be read '
            f'({type(e).__name__}: {str(e).splitlines()[0]}).') from e
    if check_digest and isinstance(obj, dict) and DIGEST_KEY in obj:
        expected = obj[DIGEST_KEY]
        if content_digest(obj) != expected:
            raise UnsafeFileError(
                f'The {what} {path} does not match the content digest it '
                'was saved with: it was damaged or edited after saving.')
    return obj
