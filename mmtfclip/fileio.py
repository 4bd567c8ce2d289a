# Copyright (c) mmtfclip contributors. All rights reserved.
"""Reading and writing the project's files without trusting them.

Every file the project reads with ``torch.load`` goes through
:func:`load_file`: tensors, numbers, strings and containers only
(``weights_only=True``), and a message that names the file when it is
missing, empty, truncated or holds anything else (with the types it would
have had to build). Files the project writes (checkpoints, caches) go
through :func:`save_file`: written to a temporary file in the same folder
and renamed, so that a killed run never leaves half a file, and stamped
with a content digest that :func:`load_file` checks, since torch does not
check the zip records' CRC and a flipped bit otherwise reads as a different
number.

Two more formats weights come in are read as data only:

- TorchScript archives (``torch.jit.save``, e.g. OpenAI's CLIP files), by
  :func:`load_torchscript_weights`. ``torch.jit.load`` would run the
  archive's code (a class's ``__setstate__`` runs while loading); here the
  archive's ``data.pkl`` goes through an unpickler that rebuilds tensors
  from the ``data/`` records and records the archive's module objects as
  inert attribute dicts, and the parameter and buffer names come from
  parsing (never running) the ``code/`` records.
- ``.safetensors`` files, by :func:`load_safetensors` (a JSON header and
  raw bytes: nothing in them can run).

:func:`check_finite` refuses tensors with NaN or infinite values, naming
the file and the keys.
"""
import ast
import hashlib
import io
import os
import os.path as osp
import pickle
import re
import tempfile
import zipfile
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional, Tuple

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
    path = _check_exists(path, what)
    if is_torchscript_archive(path):
        raise UnsafeFileError(
            f'The {what} {path} is a TorchScript archive (torch.jit.save), '
            'not a file saved with torch.save; torch.jit.load would run the '
            f'code in it, so it is not read as a {what}.')
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        raise UnsafeFileError(
            f'The {what} {path} holds more than tensors, numbers, strings '
            'and containers, so it is not read (reading it could run code '
            f'planted in it): {_unsafe_globals_message(path, e)}') from e
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


def _check_exists(path: str, what: str) -> str:
    """``path`` expanded; refuses a missing or empty file by name."""
    path = osp.expanduser(str(path))
    if not osp.isfile(path):
        raise FileNotFoundError(f'The {what} {path} does not exist.')
    if osp.getsize(path) == 0:
        raise UnsafeFileError(f'The {what} {path} is empty (0 bytes).')
    return path


def _unsafe_globals_message(path: str, error: Exception) -> str:
    """The types a refused pickle names, found without unpickling it."""
    try:
        names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
    except Exception:  # legacy (non-zip) files: fall back to torch's text
        names = []
    if names:
        return 'it names ' + ', '.join(sorted(names))
    match = re.search(r'WeightsUnpickler error: ([^\n]*)', str(error))
    return match.group(1) if match else str(error).splitlines()[0]


def is_torchscript_archive(path: str) -> bool:
    """Whether ``path`` is a TorchScript archive (``torch.jit.save``).

    ``torch.jit.save`` writes a zip holding ``constants.pkl`` and a
    ``code/`` folder; ``torch.save`` writes a zip without them (or, in the
    legacy format, no zip at all).

    Args:
        path (str): The file.

    Returns:
        bool: True for a TorchScript archive.
    """
    if not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False
    return any(
        name.endswith('/constants.pkl') or '/code/' in name for name in names)


def is_safetensors_file(path: str) -> bool:
    """Whether ``path`` starts like a safetensors file: an 8-byte
    little-endian header length, then a JSON object of that length."""
    size = osp.getsize(path)
    with open(path, 'rb') as f:
        head = f.read(9)
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], 'little')
    return head[8:9] == b'{' and 0 < length <= size - 8


def load_safetensors(path: str,
                     what: str = 'file') -> 'OrderedDict[str, torch.Tensor]':
    """Read a ``.safetensors`` file (no code can be in one).

    Args:
        path (str): The file.
        what (str): What the file is meant to be, for the messages.
            Defaults to ``'file'``.

    Returns:
        OrderedDict: The tensors on the CPU, in the file's order.

    Raises:
        FileNotFoundError: If there is no such file.
        UnsafeFileError: If it is empty, truncated or not safetensors.
    """
    from safetensors import safe_open
    path = _check_exists(path, what)
    try:
        with safe_open(path, framework='pt', device='cpu') as f:
            return OrderedDict((k, f.get_tensor(k)) for k in f.keys())
    except Exception as e:  # SafetensorError, OSError, ValueError
        raise UnsafeFileError(
            f'The {what} {path} is truncated or not a safetensors file '
            f'({type(e).__name__}: {str(e).splitlines()[0]}).') from e


def check_finite(tensors: Mapping[str, Any],
                 path: str,
                 what: str = 'file') -> None:
    """Refuse floating-point tensors holding NaN or infinite values.

    Args:
        tensors (Mapping): Names to tensors (other values are skipped).
        path (str): The file they come from, for the message.
        what (str): What the file is, for the message.
            Defaults to ``'file'``.

    Raises:
        UnsafeFileError: Naming the file and every non-finite key.
    """
    bad = []
    for key, value in tensors.items():
        if (isinstance(value, torch.Tensor)
                and (value.is_floating_point() or value.is_complex())
                and not bool(torch.isfinite(value).all())):
            count = int((~torch.isfinite(value)).sum())
            bad.append(f'{key} ({count} of {value.numel()} values)')
    if bad:
        raise UnsafeFileError(
            f'The {what} {path} holds NaN or infinite values in '
            f'{len(bad)} tensor(s): {", ".join(bad[:10])}' +
            (', ...' if len(bad) > 10 else '') +
            '; a model built from them computes NaN, so it is not used.')


# Storage classes a TorchScript archive's data.pkl names, by dtype.
_STORAGE_DTYPES = {
    'DoubleStorage': torch.float64,
    'FloatStorage': torch.float32,
    'HalfStorage': torch.float16,
    'BFloat16Storage': torch.bfloat16,
    'LongStorage': torch.int64,
    'IntStorage': torch.int32,
    'ShortStorage': torch.int16,
    'CharStorage': torch.int8,
    'ByteStorage': torch.uint8,
    'BoolStorage': torch.bool,
    'ComplexFloatStorage': torch.complex64,
    'ComplexDoubleStorage': torch.complex128,
}


class _ClassInfo:
    """What the ``code/`` records say about one class of an archive."""

    def __init__(self, is_module: bool, parameters: List[str],
                 buffers: List[str], runs_on_load: List[str]):
        self.is_module = is_module
        self.parameters = parameters
        self.buffers = buffers
        self.runs_on_load = runs_on_load


class _ScriptObject:
    """An object of one of the archive's classes, kept as inert data."""

    qualname = ''

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        obj.state = None
        return obj

    def __init__(self, *args, **kwargs):
        pass


class _StorageType:
    """Stands for a ``torch.XStorage`` class in a persistent id."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]


def _literal_names(node: ast.AST) -> List[str]:
    value = ast.literal_eval(node)
    if not (isinstance(value, (list, tuple))
            and all(isinstance(v, str) for v in value)):
        raise ValueError('not a list of names')
    return list(value)


def _parse_classes(archive: zipfile.ZipFile,
                   prefix: str) -> Dict[str, _ClassInfo]:
    """Parse (never run) the archive's ``code/`` records for its classes:
    which attributes are parameters and buffers, and which methods
    ``torch.jit.load`` would run while loading."""
    classes = {}
    code_dir = prefix + 'code/'
    for name in archive.namelist():
        if not (name.startswith(code_dir) and name.endswith('.py')):
            continue
        module = name[len(code_dir):-len('.py')].replace('/', '.')
        tree = ast.parse(archive.read(name).decode('utf-8'), filename=name)
        for node in tree.body:
            if not isinstance(node, ast.ClassDef):
                continue
            parameters, buffers = None, None
            methods = []
            for item in node.body:
                if isinstance(item, ast.FunctionDef):
                    methods.append(item.name)
                elif (isinstance(item, ast.Assign) and len(item.targets) == 1
                      and isinstance(item.targets[0], ast.Name)):
                    target = item.targets[0].id
                    if target == '__parameters__':
                        parameters = _literal_names(item.value)
                    elif target == '__buffers__':
                        buffers = _literal_names(item.value)
            is_module = any(
                isinstance(b, ast.Name) and b.id == 'Module'
                for b in node.bases)
            classes[f'{module}.{node.name}'] = _ClassInfo(
                is_module=is_module and parameters is not None
                and buffers is not None,
                parameters=parameters or [],
                buffers=buffers or [],
                runs_on_load=[m for m in methods if m == '__setstate__'])
    return classes


class _ArchiveUnpickler(pickle._Unpickler):
    """Unpickles a TorchScript ``data.pkl`` into tensors and inert objects.

    The only callables it hands the pickle machinery are its own: the
    tensor rebuild, ``OrderedDict``, list builders, and empty classes that
    stand for the archive's module classes. Any other global is refused,
    and ``BUILD`` only stores a state on those stand-ins, so nothing of the
    file's choosing runs.
    """

    def __init__(self, archive: zipfile.ZipFile, prefix: str,
                 classes: Dict[str, _ClassInfo], source: str):
        self._archive = archive
        self._prefix = prefix
        self._classes = classes
        self._source = source
        self._storages: Dict[str, torch.Tensor] = {}
        self._stand_ins: Dict[str, type] = {}
        super().__init__(io.BytesIO(archive.read(prefix + 'data.pkl')))

    def _refuse(self, reason: str) -> None:
        raise UnsafeFileError(
            f'The TorchScript archive {self._source} is not read: {reason}.')

    def find_class(self, module: str, name: str) -> Any:
        full = f'{module}.{name}'
        if full == 'torch._utils._rebuild_tensor_v2':
            return self._rebuild_tensor
        if module == 'torch' and name in _STORAGE_DTYPES:
            return _StorageType(name)
        if full == 'collections.OrderedDict':
            return OrderedDict
        if full == 'torch.jit._pickle.restore_type_tag':
            return lambda value, type_str: value
        if module == 'torch.jit._pickle' and name in ('build_intlist',
                                                      'build_doublelist',
                                                      'build_boollist',
                                                      'build_tensorlist'):
            return list
        if module == '__torch__' or module.startswith('__torch__.'):
            info = self._classes.get(full)
            if info is None or not info.is_module:
                self._refuse(f'it holds an object of {full}, which is not '
                             'a module class defined in the archive')
            if info.runs_on_load:
                self._refuse(
                    f'its class {full} defines {info.runs_on_load[0]}, code '
                    'that torch.jit.load would run while loading (CLIP '
                    'weight files have none)')
            if full not in self._stand_ins:
                self._stand_ins[full] = type(name, (_ScriptObject, ),
                                             dict(qualname=full))
            return self._stand_ins[full]
        self._refuse(f'its data.pkl names {full}, which a weight file '
                     'never needs (a planted payload?)')

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if not (isinstance(pid, tuple) and len(pid) == 5
                and pid[0] == 'storage' and isinstance(pid[1], _StorageType)
                and isinstance(pid[2], str) and isinstance(pid[4], int)):
            self._refuse(f'unknown persistent id {pid!r}')
        _, storage_type, key, _, numel = pid
        if key not in self._storages:
            record = f'{self._prefix}data/{key}'
            try:
                data = self._archive.read(record)
            except KeyError:
                self._refuse(f'the tensor record {record} is missing')
            dtype = storage_type.dtype
            itemsize = torch.empty((), dtype=dtype).element_size()
            if len(data) != numel * itemsize:
                self._refuse(f'the tensor record {record} has {len(data)} '
                             f'bytes, not {numel * itemsize}: it is '
                             'truncated')
            self._storages[key] = (
                torch.frombuffer(bytearray(data), dtype=dtype)
                if numel else torch.empty(0, dtype=dtype))
        return self._storages[key]

    def _rebuild_tensor(self, storage, offset, size, stride, *rest):
        if not (isinstance(storage, torch.Tensor) and isinstance(offset, int)
                and isinstance(size, tuple) and isinstance(stride, tuple)
                and len(size) == len(stride) and all(
                    isinstance(v, int) and v >= 0
                    for v in (offset, *size, *stride))):
            self._refuse('a tensor has a malformed layout')
        if all(size):
            extent = offset + sum(
                (s - 1) * st for s, st in zip(size, stride)) + 1
            if extent > storage.numel():
                self._refuse(f'a tensor of size {size} reaches past its '
                             f'record ({storage.numel()} values)')
        return storage.as_strided(size, stride, offset)

    def load_build(self):
        state = self.stack.pop()
        inst = self.stack[-1]
        if not isinstance(inst, _ScriptObject):
            self._refuse(f'its data.pkl sets the state of a '
                         f'{type(inst).__name__}')
        inst.state = state

    dispatch = dict(pickle._Unpickler.dispatch)
    dispatch[pickle.BUILD[0]] = load_build


def _archive_prefix(archive: zipfile.ZipFile, source: str) -> str:
    pickles = [n for n in archive.namelist() if n.endswith('data.pkl')]
    tops = [n for n in pickles if n.count('/') <= 1]
    if len(tops) != 1:
        raise UnsafeFileError(
            f'The TorchScript archive {source} has no single data.pkl '
            f'record (found {pickles[:4]}): it is truncated or corrupt.')
    return tops[0][:-len('data.pkl')]


def _state_dict_of(root: Any, classes: Dict[str, _ClassInfo],
                   source: str) -> 'OrderedDict[str, torch.Tensor]':
    """The state dict ``torch.jit.load(...).state_dict()`` would give:
    each module's parameters, then its buffers, then its children."""
    state_dict = OrderedDict()
    seen = set()
    todo: List[Tuple[str, Any]] = [('', root)]
    while todo:
        prefix, obj = todo.pop(0)
        if id(obj) in seen:
            raise UnsafeFileError(
                f'The TorchScript archive {source} is not read: its module '
                'tree has a cycle.')
        seen.add(id(obj))
        info = classes[obj.qualname]
        if not isinstance(obj.state, dict):
            raise UnsafeFileError(
                f'The TorchScript archive {source} is not read: the state '
                f'of {obj.qualname} is not a dict of attributes.')
        for name in info.parameters + info.buffers:
            value = obj.state.get(name)
            if isinstance(value, torch.Tensor):
                state_dict[prefix + name] = value
            elif value is not None:
                raise UnsafeFileError(
                    f'The TorchScript archive {source} is not read: '
                    f'{prefix + name} is a {type(value).__name__}, not a '
                    'tensor.')
        children = [(prefix + name + '.', value)
                    for name, value in obj.state.items()
                    if isinstance(value, _ScriptObject)]
        todo[:0] = children
    return state_dict


def load_torchscript_weights(path: str,
                             what: str = 'file'
                             ) -> 'OrderedDict[str, torch.Tensor]':
    """Read the weights of a TorchScript archive without running it.

    Gives what ``torch.jit.load(path).state_dict()`` gives (every module's
    parameters and buffers, on the CPU), but reads them out of the
    archive's records: ``data.pkl`` is unpickled by a restricted
    unpickler that only rebuilds tensors (each module becomes an inert
    dict of attributes) and the parameter and buffer names are parsed from
    the ``code/`` records, which are never run. An archive whose classes
    define ``__setstate__`` (code ``torch.jit.load`` runs while loading),
    or whose ``data.pkl`` names anything else than tensors and the
    archive's own module classes, is refused.

    Args:
        path (str): The archive.
        what (str): What the file is meant to be, for the messages.
            Defaults to ``'file'``.

    Returns:
        OrderedDict: Names to tensors.

    Raises:
        FileNotFoundError: If there is no such file.
        UnsafeFileError: If it is empty, truncated, not a TorchScript
            archive or holds more than modules and tensors; the message
            names the file and what was found.
    """
    path = _check_exists(path, what)
    try:
        with zipfile.ZipFile(path) as archive:
            prefix = _archive_prefix(archive, path)
            byteorder = f'{prefix}byteorder'
            if (byteorder in archive.namelist()
                    and archive.read(byteorder).strip() != b'little'):
                raise UnsafeFileError(
                    f'The {what} {path} was written on a big-endian '
                    'machine; only little-endian archives are read.')
            classes = _parse_classes(archive, prefix)
            root = _ArchiveUnpickler(archive, prefix, classes, path).load()
    except UnsafeFileError:
        raise
    except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError,
            IndexError, TypeError, SyntaxError, RecursionError,
            UnicodeDecodeError, pickle.UnpicklingError) as e:
        raise UnsafeFileError(
            f'The {what} {path} is truncated or corrupt and cannot be read '
            f'({type(e).__name__}: {str(e).splitlines()[0] if str(e) else e!r}'
            ').') from e
    if not isinstance(root, _ScriptObject):
        raise UnsafeFileError(
            f'The {what} {path} is not a TorchScript module archive (its '
            f'data.pkl holds a {type(root).__name__}).')
    return _state_dict_of(root, classes, path)
