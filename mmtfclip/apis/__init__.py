# Copyright (c) mmtfclip contributors. All rights reserved.
from .feature_extractor import TrackletFeatureExtractor
from .gallery_index import GalleryIndex, import_faiss
from .inference import (CheckpointMismatchError, check_checkpoint,
                        extract_tracklet_features, get_test_pipeline,
                        init_model)
from .search import (GalleryTracklet, embed_tracklets, embedding_key,
                     embedding_settings, list_gallery, list_query_tracklets,
                     read_box_track, read_video_tracklet, search_results,
                     sync_gallery_index, tracklet_frames, tracklet_record,
                     write_search_results)

__all__ = [
    'CheckpointMismatchError', 'check_checkpoint', 'extract_tracklet_features',
    'get_test_pipeline', 'init_model', 'GalleryTracklet', 'GalleryIndex',
    'import_faiss', 'embed_tracklets', 'embedding_key', 'embedding_settings',
    'list_gallery', 'list_query_tracklets', 'read_box_track',
    'read_video_tracklet', 'search_results', 'sync_gallery_index',
    'tracklet_frames', 'tracklet_record', 'write_search_results',
    'TrackletFeatureExtractor'
]
