# Copyright (c) mmtfclip contributors. All rights reserved.
from .functional import (PerQueryRank, compute_distance_matrix,
                         count_valid_matches, evaluate_rank,
                         evaluate_rank_per_query, re_ranking,
                         reference_evaluate_rank, valid_gallery_mask)
from .metrics import ReIDMetric, pack_frame_paths

__all__ = [
    'PerQueryRank', 'ReIDMetric', 'compute_distance_matrix',
    'count_valid_matches', 'evaluate_rank', 'evaluate_rank_per_query',
    'pack_frame_paths', 're_ranking', 'reference_evaluate_rank',
    'valid_gallery_mask'
]
