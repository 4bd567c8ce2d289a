# Copyright (c) mmtfclip contributors. All rights reserved.
"""Each top-level video config's pipelines sample clips of its own T.

A config that inherits one of these and names ``{{_base_.val_pipeline}}``
(as docs/custom_dataset.md does) must not pick up a dataset config's T.
"""
import glob
import os.path as osp

import pytest
from mmengine.config import Config

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIGS = sorted(glob.glob(osp.join(ROOT, 'configs', 'tfclip_*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_pipelines_follow_num_frames(path):
    cfg = Config.fromfile(path)
    num_frames = cfg.model.neck.num_frames
    for name in ('train_pipeline', 'val_pipeline', 'test_pipeline'):
        assert name in cfg, f'{osp.basename(path)} defines no {name}'
        lens = [
            t['clip_len'] for t in cfg[name]
            if t['type'] == 'SampleTrackletFrames'
        ]
        message = (f'{osp.basename(path)}: {name} samples clip_len {lens}, '
                   f'model.neck.num_frames is {num_frames}')
        assert lens == [num_frames], message
