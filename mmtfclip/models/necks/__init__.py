# Copyright (c) mmtfclip contributors. All rights reserved.
from .temporal_memory_diffusion import TemporalMemoryDiffusion, TMDLayer

__all__ = ['TemporalMemoryDiffusion', 'TMDLayer']
