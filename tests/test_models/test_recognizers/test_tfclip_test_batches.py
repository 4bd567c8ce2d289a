# Copyright (c) mmtfclip contributors. All rights reserved.
"""The Runner's test loop with several tracklets of different clip counts
per batch gives the numbers of one tracklet per batch."""
import json
import os.path as osp

import numpy as np
import torch
from mmengine.config import Config
from mmengine.runner import Runner

from helpers.tiny_demo import TINY_DEMO_OPTIONS, write_tiny_synthetic_mars
from mmtfclip.registry import MODELS
from mmtfclip.utils import register_all_modules
from mmtfclip.utils.launch import set_dataloader_defaults

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))


def _test(cfg: Config, checkpoint: str, batch_size: int,
          work_dir: str) -> dict:
    cfg = cfg.copy()
    cfg.work_dir = work_dir
    cfg.load_from = checkpoint
    cfg.test_dataloader.batch_size = batch_size
    cfg.test_dataloader.num_workers = 1
    cfg.test_evaluator.dump_path = osp.join(work_dir, 'dump.npz')
    # As tools/test.py: collate_fn and worker options.
    set_dataloader_defaults(cfg)
    metrics = Runner.from_cfg(cfg).test()
    dump = dict(np.load(cfg.test_evaluator.dump_path))
    return dict(metrics=metrics, dump=dump)


def test_runner_test_batches_match_batch_size_one(tmp_path):
    register_all_modules()
    data_root = write_tiny_synthetic_mars(str(tmp_path / 'data'))
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'tfclip_demo.py'))
    # Both options are integers (head.num_classes, backbone.num_cams).
    options = {
        key: int(value)
        for key, value in (opt.split('=') for opt in TINY_DEMO_OPTIONS)
    }
    options['model.max_test_clips'] = 3
    cfg.merge_from_dict(options)
    for dataset in cfg.test_dataloader.dataset.datasets:
        dataset.data_root = data_root
    cfg.custom_hooks = []
    cfg.test_evaluator = dict(cfg.test_evaluator)
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.init_weights()
    checkpoint = str(tmp_path / 'random.pth')
    torch.save(dict(state_dict=model.state_dict()), checkpoint)
    # The config's batch: dense clips, several tracklets per batch.
    assert cfg.test_dataloader.batch_size == 8

    one = _test(cfg, checkpoint, 1, str(tmp_path / 'one'))
    many = _test(cfg, checkpoint, 8, str(tmp_path / 'many'))
    # 4-6 frames in clips of 4: 1 or 2 clips per tracklet, mixed in batches.
    sampling = json.loads(str(many['dump']['protocol']))['sampling']
    assert '1-2 clips per tracklet' in sampling
    assert one['metrics'] == many['metrics']
    assert 0 < one['metrics']['reid/mAP'] <= 100
    np.testing.assert_allclose(
        many['dump']['features'], one['dump']['features'], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(many['dump']['pids'], one['dump']['pids'])
