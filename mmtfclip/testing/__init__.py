# Copyright (c) mmtfclip contributors. All rights reserved.
"""Helpers for tests and demos (tiny generated models, no downloads)."""
from .clip import (TINY_CLIP_FORMATS, make_tiny_clip_state_dict,
                   save_tiny_clip, tiny_clip_arch)

__all__ = [
    'TINY_CLIP_FORMATS', 'make_tiny_clip_state_dict', 'save_tiny_clip',
    'tiny_clip_arch'
]
