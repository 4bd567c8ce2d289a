# Copyright (c) mmtfclip contributors. All rights reserved.
from .tracklet_data_preprocessor import TrackletDataPreprocessor

__all__ = ['TrackletDataPreprocessor']
