# Copyright (c) mmtfclip contributors. All rights reserved.
"""Helpers for tests and demos (tiny generated models, no downloads)."""
from .clip import (TINY_CLIP_FORMATS, make_tiny_clip_state_dict,
                   save_tiny_clip, tiny_clip_arch)
from .tiny_demo import TINY_DEMO_OPTIONS, run_python, write_tiny_synthetic_mars

__all__ = [
    'TINY_CLIP_FORMATS', 'make_tiny_clip_state_dict', 'save_tiny_clip',
    'tiny_clip_arch', 'TINY_DEMO_OPTIONS', 'run_python',
    'write_tiny_synthetic_mars'
]
