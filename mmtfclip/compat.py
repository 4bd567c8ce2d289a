# Copyright (c) mmtfclip contributors. All rights reserved.
"""Fixes for the known incompatibilities of the pinned stack, applied once.

``import mmtfclip`` imports this module, so every tool, test and API gets the
fixes without doing anything.

torch >= 2.6 made ``torch.load(weights_only=True)`` the default; mmengine
0.10.7 calls ``torch.load`` without the argument and its Runner pickles the
message hub's ``HistoryBuffer`` objects into every checkpoint. The project's
runner (:class:`mmtfclip.engine.runner.ReIDRunner`) writes checkpoints that
hold plain data only, so the local-file scheme of mmengine's
``CheckpointLoader`` is registered again to read them with
:func:`mmtfclip.fileio.load_file`: ``weights_only=True`` and the content
digest checked, for ``--resume``, ``load_from``, ``tools/test.py`` and
:func:`mmtfclip.apis.init_model` alike. A file that needs any other object
is refused with its name and the type; nothing is unpickled beyond tensors,
numbers, strings and containers, whoever wrote the file.
"""
import os.path as osp
from typing import Any, Optional

from mmengine.runner.checkpoint import CheckpointLoader, _load_checkpoint

from mmtfclip.fileio import load_file


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_local_checkpoint(filename: str,
                          map_location: Optional[Any] = None) -> Any:
    """Read a local checkpoint as plain data (mmengine's local scheme).

    Args:
        filename (str): Path of the checkpoint.
        map_location (optional): Same as :func:`torch.load`.
            Defaults to None.

    Returns:
        dict: The checkpoint.

    Raises:
        FileNotFoundError: If there is no such file.
        mmtfclip.fileio.UnsafeFileError: If the file is empty, truncated,
            no longer matches its digest or holds more than plain data.
    """
    return load_file(
        osp.expanduser(filename), map_location=map_location, what='checkpoint')


def load_checkpoint(filename: str, map_location: Optional[Any] = 'cpu') -> Any:
    """Read a checkpoint from a path or URL, without mmengine's
    ``Loads checkpoint by ... backend`` log line for local files.

    Args:
        filename (str): A local path, or a URL any ``CheckpointLoader``
            scheme reads.
        map_location (optional): Same as :func:`torch.load`.
            Defaults to ``'cpu'``.

    Returns:
        The checkpoint.
    """
    if '://' in str(filename):
        return _load_checkpoint(filename, map_location=map_location)
    return load_local_checkpoint(str(filename), map_location=map_location)
