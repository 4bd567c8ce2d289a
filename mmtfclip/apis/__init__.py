# Copyright (c) mmtfclip contributors. All rights reserved.
from .inference import (CheckpointMismatchError, check_checkpoint,
                        extract_tracklet_features, init_model)

__all__ = [
    'CheckpointMismatchError', 'check_checkpoint', 'extract_tracklet_features',
    'init_model'
]
