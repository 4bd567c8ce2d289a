# Copyright (c) mmtfclip contributors. All rights reserved.
"""The analysis tools on the outputs of one short demo training run, which
also checks the TensorBoard switch of default_runtime.py."""
import glob
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest
from mmengine.config import Config

from helpers.tiny_demo import (TINY_DEMO_OPTIONS, run_python,
                               write_tiny_synthetic_mars)
from mmtfclip.registry import MODELS

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TOOLS = osp.join(ROOT, 'tools', 'analysis_tools')
DEMO = osp.join(ROOT, 'configs', 'tfclip_demo.py')
MODEL_OPTIONS = TINY_DEMO_OPTIONS


def run(*args):
    return run_python(args, cwd=ROOT)


def run_failing(*args):
    return run_python(args, cwd=ROOT, expect_success=False)


@pytest.fixture(scope='module')
def trained(tmp_path_factory):
    """Two demo epochs (validating after each) with TensorBoard on, as the
    comment in default_runtime.py says; returns the paths it made."""
    tmp = tmp_path_factory.mktemp('analysis')
    data_root = str(tmp / 'data')
    write_tiny_synthetic_mars(data_root)
    config = tmp / 'demo_tensorboard.py'
    config.write_text(
        f'_base_ = [{DEMO!r}]\n'
        'visualizer = dict(vis_backends=[\n'
        "    *_base_.vis_backends, dict(type='TensorboardVisBackend')])\n")
    work_dir = str(tmp / 'work')
    run(
        osp.join(ROOT, 'tools', 'train.py'), str(config), '--work-dir',
        work_dir, '--cfg-options', *MODEL_OPTIONS, 'train_cfg.max_epochs=2',
        'train_cfg.val_interval=1', 'default_hooks.logger.interval=1',
        'default_hooks.checkpoint.interval=2',
        f'train_dataloader.dataset.data_root={data_root}',
        *(f'{loader}.dataset.datasets.{i}.data_root={data_root}'
          for loader in ('val_dataloader', 'test_dataloader') for i in (0, 1)))
    logs = glob.glob(osp.join(work_dir, '*', 'vis_data', '2*.json'))
    assert len(logs) == 1
    return dict(
        tmp=tmp,
        config=str(config),
        data_root=data_root,
        checkpoint=osp.join(work_dir, 'epoch_2.pth'),
        log=logs[0])


def test_tensorboard_backend_writes_events(trained):
    events = glob.glob(
        osp.join(osp.dirname(trained['log']), 'events.out.tfevents.*'))
    assert len(events) == 1 and os.path.getsize(events[0]) > 0


@pytest.mark.parametrize('split', ['query', 'gallery', 'train'])
def test_extract_features(trained, split):
    out = str(trained['tmp'] / f'{split}.npz')
    run(
        osp.join(TOOLS, 'extract_features.py'), trained['config'],
        trained['checkpoint'], '--split', split, '--out', out, '--data-root',
        trained['data_root'], '--cfg-options', *MODEL_OPTIONS)
    from mmtfclip.registry import DATASETS
    dataset = DATASETS.build(
        dict(
            type='MARS',
            data_root=trained['data_root'],
            split=split,
            pipeline=[]))
    infos = [dataset.get_data_info(i) for i in range(len(dataset))]
    with np.load(out, allow_pickle=False) as data:
        assert str(data['split']) == split
        # 128 + 64 + 128: [class, projected class, temporal].
        assert data['features'].shape == (len(dataset), 320)
        assert np.isfinite(data['features']).all()
        assert data['pids'].tolist() == [i['pid'] for i in infos]
        assert data['camids'].tolist() == [i['camid'] for i in infos]
        assert data['tracklet_ids'].tolist() == list(range(len(dataset)))
        offsets = data['frame_path_offsets']
        last = len(dataset) - 1
        assert data['frame_paths'][offsets[last]:offsets[last + 1]].tolist(
        ) == infos[last]['frame_paths']


def test_analyze_logs(trained):
    out = str(trained['tmp'] / 'curves.png')
    log = run(
        osp.join(TOOLS, 'analyze_logs.py'), 'plot_curve', trained['log'],
        trained['log'], '--legend', 'a', 'b', '--keys', 'loss', 'reid/mAP',
        'lr', '--out', out)
    assert 'drawn to' in log
    img = cv2.imread(out)
    # Three panels of 300 px at 100 dpi.
    assert img is not None and img.shape[:2] == (900, 800)
    log = run(
        osp.join(TOOLS, 'analyze_logs.py'), 'cal_train_time', trained['log'])
    times = re.search(r'average iteration time: ([\d.]+) s/iter', log)
    assert times and float(times.group(1)) > 0


def test_analyze_logs_errors(trained, tmp_path):
    err = run_failing(
        osp.join(TOOLS, 'analyze_logs.py'), 'plot_curve', trained['log'],
        '--keys', 'reid/nope', '--out', str(tmp_path / 'x.png'))
    assert "'reid/nope' is in no line of" in err and "'reid/mAP'" in err
    bad = tmp_path / 'bad.json'
    with open(trained['log']) as f:
        first = f.readline()
    bad.write_text(first + '{"loss": 1.0,\n')
    err = run_failing(
        osp.join(TOOLS, 'analyze_logs.py'), 'cal_train_time', str(bad))
    assert f'{bad}, line 2: not valid json' in err


def test_browse_dataset(trained):
    out_dir = str(trained['tmp'] / 'browse')
    log = run(
        osp.join(TOOLS, 'browse_dataset.py'), trained['config'], '--out-dir',
        out_dir, '--num', '3', '--data-root', trained['data_root'])
    assert '3 train sequences drawn' in log
    pictures = sorted(os.listdir(out_dir))
    assert len(pictures) == 3
    for name in pictures:
        assert re.fullmatch(r'train_\d{6}_pid\d+_cam[12]\.png', name)
        img = cv2.imread(osp.join(out_dir, name))
        # A text band of 20 px above 4 frames of 64 x 32 with 2-px gaps.
        assert img.shape[0] == 20 + 64 and img.shape[1] >= 4 * 32 + 3 * 2


def test_get_flops(trained):
    log = run(
        osp.join(TOOLS, 'get_flops.py'), trained['config'], '--cfg-options',
        *MODEL_OPTIONS)
    cfg = Config.fromfile(trained['config'])
    cfg.model.head.num_classes = 8
    cfg.model.backbone.num_cams = 2
    model = MODELS.build(cfg.model)
    params = int(re.search(r'parameters: (\d+)', log).group(1))
    assert params == sum(p.numel() for p in model.parameters())
    flops = int(re.search(r'FLOPs per clip: (\d+)', log).group(1))
    assert flops > 0
    rows = {
        m.group(1): [float(x) for x in m.group(2).split()]
        for m in re.finditer(r'^(backbone|neck|head|total) +([\d. ]+)$', log,
                             re.M)
    }
    assert rows['backbone'][2] > 0 and rows['neck'][2] > 0
    # Per frame = per clip / T (T = 4 in the demo).
    assert rows['total'][3] == pytest.approx(rows['total'][2] / 4, abs=0.001)
    assert 'pretrained=None' in log
    assert 'scaled_dot_product_attention x' not in log
