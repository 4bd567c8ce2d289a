# Copyright (c) mmtfclip contributors. All rights reserved.
from .reid_metric import ReIDMetric, pack_frame_paths

__all__ = ['ReIDMetric', 'pack_frame_paths']
