# Copyright (c) mmtfclip contributors. All rights reserved.
from .onnx_tracklet_runner import ONNXTrackletRunner, dense_clip_indices
from .tracklet_embedder import TrackletEmbedder

__all__ = ['ONNXTrackletRunner', 'TrackletEmbedder', 'dense_clip_indices']
