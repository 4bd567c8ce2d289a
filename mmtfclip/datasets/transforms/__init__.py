# Copyright (c) mmtfclip contributors. All rights reserved.
from .load_tracklet_frames import LoadTrackletFrames
from .pack_tracklet_inputs import PackTrackletInputs
from .sample_tracklet_frames import SampleTrackletFrames
from .tracklet_flip import TrackletFlip
from .tracklet_random_crop import TrackletRandomCrop
from .tracklet_random_erasing import TrackletRandomErasing
from .tracklet_resize import TrackletResize

__all__ = [
    'SampleTrackletFrames', 'LoadTrackletFrames', 'TrackletResize',
    'TrackletFlip', 'TrackletRandomCrop', 'TrackletRandomErasing',
    'PackTrackletInputs'
]
