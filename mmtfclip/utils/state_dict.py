# Copyright (c) mmtfclip contributors. All rights reserved.
from collections import OrderedDict
from typing import Mapping


def strip_module_prefix(state_dict: Mapping) -> OrderedDict:
    """Drop the ``module.`` prefix that (Distributed)DataParallel puts on
    the keys of a wrapped model's state dict.

    Args:
        state_dict (Mapping): Names to tensors; keys without the prefix
            are kept as they are.

    Returns:
        OrderedDict: The same values, in the same order.
    """
    prefix = 'module.'
    return OrderedDict((k[len(prefix):] if k.startswith(prefix) else k, v)
                       for k, v in state_dict.items())
