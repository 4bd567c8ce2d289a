# Copyright (c) mmtfclip contributors. All rights reserved.
from .feature_extractor import TrackletFeatureExtractor
from .inference import (CheckpointMismatchError, check_checkpoint,
                        extract_tracklet_features, get_test_pipeline,
                        init_model)
from .search import (GalleryTracklet, embed_tracklets, gallery_cache_key,
                     list_gallery, load_gallery_cache, rank_gallery,
                     read_box_track, read_video_tracklet, save_gallery_cache,
                     tracklet_frames)

__all__ = [
    'CheckpointMismatchError', 'check_checkpoint', 'extract_tracklet_features',
    'get_test_pipeline', 'init_model', 'GalleryTracklet', 'embed_tracklets',
    'gallery_cache_key', 'list_gallery', 'load_gallery_cache', 'rank_gallery',
    'read_box_track', 'read_video_tracklet', 'save_gallery_cache',
    'tracklet_frames', 'TrackletFeatureExtractor'
]
