# Copyright (c) mmtfclip contributors. All rights reserved.
from .functional import (compute_distance_matrix, count_valid_matches,
                         evaluate_rank, re_ranking)
from .metrics import ReIDMetric, pack_frame_paths

__all__ = [
    'ReIDMetric', 'compute_distance_matrix', 'count_valid_matches',
    'evaluate_rank', 'pack_frame_paths', 're_ranking'
]
