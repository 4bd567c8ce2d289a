# Copyright (c) mmtfclip contributors. All rights reserved.
from .functional import (compute_distance_matrix, count_valid_matches,
                         evaluate_rank, re_ranking)
from .metrics import ReIDMetric

__all__ = [
    'ReIDMetric', 'compute_distance_matrix', 'count_valid_matches',
    'evaluate_rank', 're_ranking'
]
