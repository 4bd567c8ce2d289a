# Copyright (c) mmtfclip contributors. All rights reserved.
"""tools/test.py --dump --show-dir on a tiny model and synthetic data, then
tools/analysis_tools/visualize_ranks.py on the dump."""
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch
from mmengine.config import Config

from helpers.tiny_demo import (TINY_DEMO_OPTIONS, run_python,
                               write_tiny_synthetic_mars)
from mmtfclip.evaluation.functional import count_valid_matches, evaluate_rank
from mmtfclip.registry import MODELS

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(ROOT, 'configs', 'tfclip_demo.py')
MODEL_OPTIONS = TINY_DEMO_OPTIONS


def run(*args):
    return run_python(args, cwd=ROOT)


@pytest.fixture(scope='module')
def tested(tmp_path_factory):
    """A test run with --show-dir; returns the show dir and the dump."""
    tmp = tmp_path_factory.mktemp('show')
    data_root = str(tmp / 'data')
    write_tiny_synthetic_mars(data_root)
    cfg = Config.fromfile(CONFIG)
    cfg.model.head.num_classes = 8
    cfg.model.backbone.num_cams = 2
    torch.manual_seed(0)
    ckpt = str(tmp / 'model.pth')
    torch.save({
        'state_dict': MODELS.build(cfg.model).state_dict(),
        'meta': {}
    }, ckpt)
    show_dir = str(tmp / 'show')
    log = run(
        osp.join(ROOT, 'tools', 'test.py'), CONFIG, ckpt, '--work-dir',
        str(tmp / 'work'), '--show-dir', show_dir, '--show-topk', '3',
        '--show-num', '2', '--cfg-options', *MODEL_OPTIONS,
        *(f'test_dataloader.dataset.datasets.{i}.data_root={data_root}'
          for i in (0, 1)))
    assert '2 ranking pictures written to' in log
    return show_dir, osp.join(show_dir, 'test_results.npz')


def test_test_py_show_dir(tested):
    show_dir, dump_path = tested
    dump = np.load(dump_path)
    pictures = sorted(f for f in os.listdir(show_dir) if f.endswith('.png'))
    assert len(pictures) == 2
    first, last = 0, len(dump['query_index']) - 1
    for k, (pos, name) in enumerate(zip((first, last), pictures), 1):
        q = dump['query_index'][pos]
        assert name == (f'{k:03d}_query{pos:05d}_id{dump["pids"][q]}_'
                        f'cam{dump["camids"][q] + 1}.png')
        img = cv2.imread(osp.join(show_dir, name))
        # Strips of 4 frames of 64 px plus the border: the query's (2 text
        # lines across the picture) above one row of the top-3's (1 line).
        assert img.shape == (32 + 134 + 10 + 18 + 134, 3 * 262 + 2 * 4, 3)


def test_visualize_ranks(tested, tmp_path):
    _, dump_path = tested
    out_dir = str(tmp_path / 'ranks')
    log = run(
        osp.join(ROOT, 'tools', 'analysis_tools',
                 'visualize_ranks.py'), dump_path, '--out-dir', out_dir,
        '--topk', '2', '--queries', '1', '--num-frames', '2')
    assert '1 ranking pictures written' in log
    (name, ) = os.listdir(out_dir)
    assert name.startswith('001_query00001_')
    img = cv2.imread(osp.join(out_dir, name))
    # Two strips of 2 frames side by side; the header wraps, not cut.
    assert img.shape[1] == 2 * 134 + 4 and img.shape[0] < 400


def test_visualize_ranks_worst_first(tested, tmp_path):
    """--order worst draws the queries by increasing AP, each query's AP
    computed here with evaluate_rank on its own row."""
    _, dump_path = tested
    dump = dict(np.load(dump_path))
    pids, camids = dump['pids'], dump['camids']
    q, g = dump['query_index'], dump['gallery_index']
    valid = count_valid_matches(pids[q], pids[g], camids[q], camids[g])
    aps = {
        i:
        evaluate_rank(dump['distmat'][i:i + 1], pids[q[i]:q[i] + 1], pids[g],
                      camids[q[i]:q[i] + 1], camids[g])[1]
        for i in np.flatnonzero(valid)
    }
    out_dir = str(tmp_path / 'worst')
    log = run(
        osp.join(ROOT, 'tools', 'analysis_tools', 'visualize_ranks.py'),
        dump_path, '--out-dir', out_dir, '--topk', '3', '--num', '4',
        '--order', 'worst', '--layout', 'row', '--num-frames', '1')
    assert '4 ranking pictures written' in log
    names = sorted(os.listdir(out_dir))
    drawn = [int(n.split('_query')[1][:5]) for n in names]
    assert drawn == sorted(aps, key=lambda i: (aps[i], i))[:4]
    for name in names:
        # One row: the query and its top-3, strips of one 64-px frame.
        img = cv2.imread(osp.join(out_dir, name))
        assert img.shape[1] == 4 * 70 + 10 + 2 * 4 and img.shape[0] < 300
