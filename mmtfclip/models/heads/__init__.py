# Copyright (c) mmtfclip contributors. All rights reserved.
from .clip_memory_head import CLIPMemoryHead
from .clipreid_head import CLIPReIDHead

__all__ = ['CLIPMemoryHead', 'CLIPReIDHead']
