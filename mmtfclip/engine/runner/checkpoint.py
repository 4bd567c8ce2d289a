# Copyright (c) mmtfclip contributors. All rights reserved.
"""The Runner's checkpoints as plain data.

mmengine's message hub keeps its logged scalars in ``HistoryBuffer``
objects and its runtime information may hold numpy scalars; pickled as they
are, a checkpoint can only be read by an unpickler that builds any object,
which would also run code planted in a file. :func:`to_plain_checkpoint`
turns a checkpoint into tensors, numbers, strings and containers before it
is written; :func:`from_plain_checkpoint` rebuilds the message hub's
buffers after it was read with ``weights_only=True``.
"""
from collections import Counter, OrderedDict
from typing import Any

import numpy as np
import torch
from mmengine.logging import HistoryBuffer

# Leaves ``torch.load(weights_only=True)`` rebuilds.
_PLAIN = (torch.Tensor, int, float, bool, str, bytes, complex, type(None),
          torch.dtype, torch.device, torch.Size)


def _plain(obj: Any, key: str) -> Any:
    # First: np.float64 is also a float, but pickles as a numpy object.
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, _PLAIN):
        return obj
    if isinstance(obj, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(obj))
    if isinstance(obj, dict):
        plain = {k: _plain(v, f'{key}.{k}') for k, v in obj.items()}
        # weights_only rebuilds these two dict kinds (schedulers keep their
        # milestones in a Counter); any other becomes a dict.
        return type(obj)(plain) if isinstance(obj, (OrderedDict,
                                                    Counter)) else plain
    if isinstance(obj, (list, tuple, set)):
        items = [_plain(v, f'{key}[{i}]') for i, v in enumerate(obj)]
        return type(obj)(items)
    raise TypeError(
        f'The checkpoint entry {key} is a {type(obj).__module__}.'
        f'{type(obj).__qualname__}, which a checkpoint read without running '
        'code cannot hold; store plain data (tensors, numbers, strings, '
        'containers) in the message hub and in hooks\' checkpoint entries.')


def to_plain_checkpoint(checkpoint: dict) -> dict:
    """A copy of a Runner checkpoint that holds plain data only.

    Each ``HistoryBuffer`` of ``message_hub.log_scalars`` becomes
    ``dict(log_history=tensor, count_history=tensor, max_length=int)``;
    numpy scalars become Python numbers and numpy arrays tensors.

    Args:
        checkpoint (dict): As built by ``Runner.save_checkpoint``.

    Returns:
        dict: The plain checkpoint.

    Raises:
        TypeError: Naming the entry that holds any other object.
    """
    checkpoint = dict(checkpoint)
    hub = checkpoint.get('message_hub')
    if isinstance(hub, dict) and 'log_scalars' in hub:
        hub = dict(hub)
        hub['log_scalars'] = {
            name:
            dict(
                log_history=torch.from_numpy(np.asarray(buf.data[0]).copy()),
                count_history=torch.from_numpy(np.asarray(buf.data[1]).copy()),
                max_length=buf.max_length)
            for name, buf in hub['log_scalars'].items()
        }
        checkpoint['message_hub'] = hub
    return {k: _plain(v, k) for k, v in checkpoint.items()}


def from_plain_checkpoint(checkpoint: dict) -> dict:
    """Rebuild the message hub's ``HistoryBuffer`` objects in place.

    Args:
        checkpoint (dict): Written by :func:`to_plain_checkpoint`.

    Returns:
        dict: ``checkpoint``.
    """
    hub = checkpoint.get('message_hub')
    if not isinstance(hub, dict):
        return checkpoint
    for name, buf in hub.get('log_scalars', {}).items():
        if isinstance(buf, dict):
            hub['log_scalars'][name] = HistoryBuffer(
                buf['log_history'].tolist(), buf['count_history'].tolist(),
                buf['max_length'])
    return checkpoint
