# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Any


def replace_key(node: Any, key: str, value: Any) -> int:
    """Set ``key`` to ``value`` in every dict below ``node`` that has it.

    Tools use it to point every dataset of a config (train, val, test, the
    parts of a ``ConcatDataset``) at another ``data_root`` or ``split_id``
    without knowing the config's structure.

    Args:
        node: A config node: a dict (``ConfigDict`` included), a list or
            tuple, or a leaf (left alone).
        key (str): The key to replace; dicts without it are not given one.
        value: The new value.

    Returns:
        int: How many dicts were changed.
    """
    count = 0
    if isinstance(node, dict):
        if key in node:
            node[key] = value
            count += 1
        for child in node.values():
            count += replace_key(child, key, value)
    elif isinstance(node, (list, tuple)):
        for child in node:
            count += replace_key(child, key, value)
    return count


def set_data_root(cfg, data_root: str) -> None:
    """Point every dataset of ``cfg`` at ``data_root`` (``--data-root``).

    Args:
        cfg (Config): The config, modified in place.
        data_root (str): The dataset folder.

    Raises:
        ValueError: If no dataset of the config has a ``data_root``.
    """
    if not replace_key(cfg._cfg_dict, 'data_root', data_root):
        raise ValueError('--data-root: no dataset of the config has a '
                         '`data_root` key to set.')
