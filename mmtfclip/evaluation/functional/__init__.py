# Copyright (c) mmtfclip contributors. All rights reserved.
from .distance import compute_distance_matrix
from .evaluate_rank import count_valid_matches, evaluate_rank
from .re_ranking import re_ranking

__all__ = [
    'compute_distance_matrix', 'count_valid_matches', 'evaluate_rank',
    're_ranking'
]
