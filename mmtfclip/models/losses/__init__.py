# Copyright (c) mmtfclip contributors. All rights reserved.
# The label-smoothed cross-entropy of TF-CLIP is mmpretrain's
# `LabelSmoothLoss(mode='original')` (same arithmetic), used from configs as
# `type='mmpretrain.LabelSmoothLoss'`.
from .supcon_loss import SupConLoss
from .triplet_loss import TripletLoss, euclidean_distance

__all__ = ['TripletLoss', 'euclidean_distance', 'SupConLoss']
