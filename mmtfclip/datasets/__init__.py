# Copyright (c) mmtfclip contributors. All rights reserved.
from .base_video_reid_dataset import BaseVideoReIDDataset
from .custom_video_reid_dataset import CustomVideoReIDDataset
from .ilidsvid import iLIDSVID
from .lsvid import LSVID
from .market1501 import Market1501
from .mars import MARS
from .msmt17 import MSMT17
from .prid2011 import PRID2011
from .samplers import *  # noqa: F401,F403
from .transforms import *  # noqa: F401,F403
from .utils import default_cache_dir

__all__ = [
    'BaseVideoReIDDataset', 'default_cache_dir', 'MARS', 'LSVID', 'iLIDSVID',
    'PRID2011', 'CustomVideoReIDDataset', 'Market1501', 'MSMT17'
]
