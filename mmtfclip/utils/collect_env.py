# Copyright (c) mmtfclip contributors. All rights reserved.
"""Print the versions of the stack and whether CUDA is present.

Run ``python -m mmtfclip.utils.collect_env`` and paste its output into a bug
report.
"""
from mmengine.utils import get_git_hash
from mmengine.utils.dl_utils import collect_env as collect_base_env

import mmtfclip


def collect_env() -> dict:
    """Collect the information of the running environment.

    Returns:
        dict: mmengine's environment summary (Python, CUDA, GCC, PyTorch,
        TorchVision, OpenCV, MMEngine) plus the versions of MMCV,
        MMPretrain, open_clip, NumPy and mmtfclip.
    """
    import mmcv
    import mmpretrain
    import numpy
    import open_clip

    env_info = collect_base_env()
    env_info['MMCV'] = mmcv.__version__
    env_info['MMPretrain'] = mmpretrain.__version__
    env_info['open_clip'] = open_clip.__version__
    env_info['NumPy'] = numpy.__version__
    env_info['mmtfclip'] = f'{mmtfclip.__version__}+{get_git_hash()[:7]}'
    return env_info


if __name__ == '__main__':
    for name, val in collect_env().items():
        print(f'{name}: {val}')
