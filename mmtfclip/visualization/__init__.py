# Copyright (c) mmtfclip contributors. All rights reserved.
from .reid_ranking_visualizer import ReIDRankingVisualizer

__all__ = ['ReIDRankingVisualizer']
