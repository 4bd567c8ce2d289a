# Copyright (c) mmtfclip contributors. All rights reserved.
import mmcv
import mmengine
import mmpretrain
from mmengine.utils import digit_version

from .version import __version__, version_info

# The versions this release is tested with; see requirements/mminstall.txt.
mmcv_minimum_version = '2.0.0'
mmcv_maximum_version = '2.3.0'
mmcv_version = digit_version(mmcv.__version__)

mmengine_minimum_version = '0.10.0'
mmengine_maximum_version = '1.0.0'
mmengine_version = digit_version(mmengine.__version__)

mmpretrain_minimum_version = '1.2.0'
mmpretrain_maximum_version = '2.0.0'
mmpretrain_version = digit_version(mmpretrain.__version__)

assert (digit_version(mmcv_minimum_version) <= mmcv_version
        < digit_version(mmcv_maximum_version)), \
    f'MMCV=={mmcv.__version__} is used but incompatible. ' \
    f'Please install mmcv>={mmcv_minimum_version}, <{mmcv_maximum_version} ' \
    '(e.g. `pip install -r requirements/mminstall.txt`).'

assert (digit_version(mmengine_minimum_version) <= mmengine_version
        < digit_version(mmengine_maximum_version)), \
    f'MMEngine=={mmengine.__version__} is used but incompatible. ' \
    f'Please install mmengine>={mmengine_minimum_version}, ' \
    f'<{mmengine_maximum_version} ' \
    '(e.g. `pip install -r requirements/mminstall.txt`).'

assert (digit_version(mmpretrain_minimum_version) <= mmpretrain_version
        < digit_version(mmpretrain_maximum_version)), \
    f'MMPretrain=={mmpretrain.__version__} is used but incompatible. ' \
    f'Please install mmpretrain>={mmpretrain_minimum_version}, ' \
    f'<{mmpretrain_maximum_version} ' \
    '(e.g. `pip install -r requirements/mminstall.txt`).'

# Imported for its side effects: the stack's known incompatibilities are
# patched once, here, before any checkpoint is read.
from . import compat  # noqa: E402,F401

__all__ = ['__version__', 'version_info', 'digit_version']
