# Copyright (c) mmtfclip contributors. All rights reserved.
from .tracklet_embedder import TrackletEmbedder

__all__ = ['TrackletEmbedder']
