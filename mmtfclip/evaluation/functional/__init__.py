# Copyright (c) mmtfclip contributors. All rights reserved.
from .distance import compute_distance_matrix
from .evaluate_rank import (PerQueryRank, count_valid_matches, evaluate_rank,
                            evaluate_rank_per_query, valid_gallery_mask)
from .re_ranking import re_ranking
from .reference_rank import reference_evaluate_rank

__all__ = [
    'PerQueryRank', 'compute_distance_matrix', 'count_valid_matches',
    'evaluate_rank', 'evaluate_rank_per_query', 're_ranking',
    'reference_evaluate_rank', 'valid_gallery_mask'
]
