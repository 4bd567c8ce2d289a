# Copyright (c) mmtfclip contributors. All rights reserved.
import glob
import os.path as osp
import re
from types import SimpleNamespace

import pytest
from mmengine.config import Config

from mmtfclip.engine.hooks import ConfigCheckHook
from mmtfclip.registry import DATASETS
from mmtfclip.utils.config_check import check_train_config
from mmtfclip.utils.launch import fit_global_batch

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIGS = sorted(
    glob.glob(osp.join(ROOT, 'configs', 'tfclip*.py')) +
    glob.glob(osp.join(ROOT, 'configs', 'tfclip', '*.py')))


@pytest.mark.parametrize('path', CONFIGS, ids=osp.basename)
def test_shipped_configs_pass(path):
    # On the number of GPUs their name states, as tools/train.py does.
    gpus = re.search(r'_(\d+)xb\d+', osp.basename(path))
    world_size = int(gpus.group(1)) if gpus else 1
    cfg = Config.fromfile(path)
    fit_global_batch(cfg, world_size)
    check_train_config(cfg, world_size)


def _demo_cfg():
    return Config.fromfile(osp.join(ROOT, 'configs', 'tfclip_demo.py'))


def test_unknown_type_names_its_key():
    cfg = _demo_cfg()
    cfg.model.neck.type = 'TemporalMemoryDifusion'
    with pytest.raises(ValueError, match=r'model\.neck\.type'):
        check_train_config(cfg)


def test_scoped_types_resolve_in_their_scope():
    cfg = _demo_cfg()
    cfg.model.head.loss_id.type = 'mmpretrain.LabelSmoothLos'
    with pytest.raises(ValueError, match=r'model\.head\.loss_id\.type'):
        check_train_config(cfg)


def test_clip_len_must_match_the_neck():
    cfg = _demo_cfg()
    cfg.model.neck.num_frames = 8
    with pytest.raises(ValueError) as err:
        check_train_config(cfg)
    msg = str(err.value)
    assert 'train_dataloader.dataset.pipeline[0].clip_len = 4' in msg
    assert 'custom_hooks[0].pipeline[0].clip_len = 4' in msg
    assert 'model.neck.num_frames = 8' in msg


def test_batch_must_be_whole_identity_groups():
    cfg = _demo_cfg()
    cfg.train_dataloader.sampler.num_instances = 3
    with pytest.raises(
            ValueError, match=r'train_dataloader\.sampler\.num_instances = 3'):
        check_train_config(cfg)


@pytest.fixture(scope='module')
def train_set(tmp_path_factory):
    from mmtfclip.utils.synthetic import make_synthetic_mars
    root = str(tmp_path_factory.mktemp('mars'))
    make_synthetic_mars(
        root,
        num_ids=6,
        num_test_ids=2,
        num_cams=3,
        tracklets_per_id=1,
        min_frames=2,
        max_frames=3,
        img_size=(32, 16))
    return DATASETS.build(
        dict(type='MARS', data_root=root, split='train', pipeline=[]))


def _runner(dataset, num_classes, num_cams):
    model = SimpleNamespace(
        head=SimpleNamespace(num_classes=num_classes),
        backbone=SimpleNamespace(num_cams=num_cams))
    return SimpleNamespace(
        train_dataloader=SimpleNamespace(dataset=dataset), model=model)


def test_hook_accepts_a_fitting_model(train_set):
    ConfigCheckHook().before_train(_runner(train_set, 4, 3))


def test_hook_names_num_classes_and_num_cams(train_set):
    with pytest.raises(ValueError) as err:
        ConfigCheckHook().before_train(_runner(train_set, 5, 2))
    msg = str(err.value)
    assert 'model.head.num_classes = 5' in msg and '4 identities' in msg
    assert 'model.backbone.num_cams = 2' in msg and 'camera id 2' in msg


def test_split_global_batch_names_its_keys():
    cfg = _demo_cfg()
    cfg.train_dataloader.sampler.split_global_batch = True
    check_train_config(cfg)
    # Two processes would take 8 each, mined within a rank's slice.
    fit_global_batch(cfg, 2)
    assert cfg.train_dataloader.batch_size == 8
    with pytest.raises(
            ValueError, match=r'model\.head\.loss_triplet\.gather = True'):
        check_train_config(cfg, 2)
    cfg.model.head.loss_triplet.gather = True
    check_train_config(cfg, 2)
    # A per-rank batch that does not add up to the global one.
    with pytest.raises(
            ValueError,
            match=r'train_dataloader\.batch_size = 8 '
            r'on 4 processes'):
        check_train_config(cfg, 4)
    cfg.train_dataloader.sampler.batch_size = 18
    with pytest.raises(
            ValueError, match=r'sampler\.batch_size = 18 \(the global'):
        check_train_config(cfg, 2)


def test_hook_checks_the_cameras_of_the_evaluated_sets(train_set):
    root = train_set.data_root
    parts = [
        DATASETS.build(
            dict(type='MARS', data_root=root, split=split, pipeline=[]))
        for split in ('query', 'gallery')
    ]
    max_cam = max(
        p.get_data_info(i)['camid'] for p in parts for i in range(len(p)))
    loader = SimpleNamespace(dataset=SimpleNamespace(datasets=parts))
    runner = _runner(train_set, 4, max_cam + 1)
    runner.test_loop = runner.val_loop = SimpleNamespace(dataloader=loader)
    ConfigCheckHook().before_test(runner)
    ConfigCheckHook().before_val(runner)
    runner.model.backbone.num_cams = max_cam
    with pytest.raises(ValueError) as err:
        ConfigCheckHook().before_test(runner)
    msg = str(err.value)
    assert f'model.backbone.num_cams = {max_cam}' in msg
    assert 'test set (' in msg and f'camera id {max_cam}' in msg
    with pytest.raises(ValueError, match='validation set'):
        ConfigCheckHook().before_val(runner)
