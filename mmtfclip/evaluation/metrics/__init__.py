# Copyright (c) mmtfclip contributors. All rights reserved.
from .reid_metric import ReIDMetric

__all__ = ['ReIDMetric']
