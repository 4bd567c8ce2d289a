# Copyright (c) mmtfclip contributors. All rights reserved.
from .base_temporal_neck import BaseTemporalNeck
from .temporal_avg_pool import TemporalAvgPool
from .temporal_conv1d import TemporalConv1d
from .temporal_memory_diffusion import TemporalMemoryDiffusion, TMDLayer
from .temporal_transformer import TemporalTransformer

__all__ = [
    'BaseTemporalNeck', 'TemporalAvgPool', 'TemporalConv1d',
    'TemporalMemoryDiffusion', 'TMDLayer', 'TemporalTransformer'
]
