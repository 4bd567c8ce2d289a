# Copyright (c) mmtfclip contributors. All rights reserved.
from .clip_memory_head import CLIPMemoryHead

__all__ = ['CLIPMemoryHead']
