# Copyright (c) mmtfclip contributors. All rights reserved.
"""Fixes for the known incompatibilities of the pinned stack, applied once.

``import mmtfclip`` imports this module, so every tool, test and API gets the
fixes without doing anything.

torch >= 2.6 made ``torch.load(weights_only=True)`` the default. mmengine
0.10.7 calls ``torch.load`` without the argument, and a full mmengine
checkpoint (``meta`` holds the message hub with its ``HistoryBuffer``
objects, numpy scalars and the config) cannot be read that way, so
``--resume`` and ``load_from`` break. Allow-listing the globals such a file
needs ends with ``builtins.getattr``, which defeats the purpose; instead the
local-file scheme of mmengine's ``CheckpointLoader`` is registered again with
an explicit ``weights_only=False``. That scheme is what the Runner uses to
read checkpoints it wrote itself (resume, ``load_from``, ``tools/test.py``).

Files that come from elsewhere (CLIP weights, the authors' checkpoints) are
never read through it: their loaders call :func:`load_weights`, which keeps
``weights_only=True``.
"""
import os.path as osp
from typing import Any, Optional

import torch
from mmengine.runner.checkpoint import CheckpointLoader


@CheckpointLoader.register_scheme(prefixes='', force=True)
def load_trusted_checkpoint(filename: str,
                            map_location: Optional[Any] = None) -> Any:
    """Read a local checkpoint written by the mmengine Runner.

    Unlike :func:`load_weights`, this unpickles arbitrary objects: only point
    ``--resume``, ``load_from`` or ``tools/test.py`` at files you trust, as
    with any pickle.

    Args:
        filename (str): Path of the checkpoint.
        map_location (optional): Same as :func:`torch.load`.
            Defaults to None.

    Returns:
        dict: The checkpoint.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    return torch.load(filename, map_location=map_location, weights_only=False)


def load_weights(filename: str, map_location: Optional[Any] = 'cpu') -> Any:
    """Read a weight file from elsewhere safely (tensors and containers only).

    Args:
        filename (str): Path of a file saved with ``torch.save``.
        map_location (optional): Same as :func:`torch.load`.
            Defaults to ``'cpu'``.

    Returns:
        The object in the file, typically a state dict.

    Raises:
        FileNotFoundError: If the file does not exist.
        RuntimeError: If the file holds more than tensors and plain
            containers; the message names the file.
    """
    filename = osp.expanduser(filename)
    if not osp.isfile(filename):
        raise FileNotFoundError(f'{filename} can not be found.')
    try:
        return torch.load(
            filename, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError or RuntimeError
        raise RuntimeError(
            f'{filename} holds more than tensors and plain containers, so it '
            'is not loaded with weights_only=True. If it is a checkpoint '
            'written by the mmengine Runner, load it with '
            '`mmengine.runner.CheckpointLoader.load_checkpoint`; otherwise '
            f'check where it comes from. ({type(e).__name__}: {e})') from e
