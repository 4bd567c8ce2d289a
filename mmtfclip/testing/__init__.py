# Copyright (c) mmtfclip contributors. All rights reserved.
"""Tiny generated CLIP models (no downloads), for the tests and for
``tools/analysis_tools/verify_against_official.py``, which needs them at run
time. The suite's other helpers live in ``tests/helpers``."""
from .clip import (TINY_CLIP_FORMATS, make_tiny_clip_state_dict,
                   save_tiny_clip, tiny_clip_arch)

__all__ = [
    'TINY_CLIP_FORMATS', 'make_tiny_clip_state_dict', 'save_tiny_clip',
    'tiny_clip_arch'
]
