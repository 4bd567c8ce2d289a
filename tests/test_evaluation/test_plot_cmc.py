# Copyright (c) mmtfclip contributors. All rights reserved.
import importlib.util
import os.path as osp
import sys
from unittest import mock

import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample
from PIL import Image

from mmtfclip.evaluation import ReIDMetric

_TOOL = osp.join(
    osp.dirname(__file__), '..', '..', 'tools', 'analysis_tools',
    'plot_cmc.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('plot_cmc', _TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _test_set(noise, seed=0):
    """Features, ids and cameras: 30 identities, 2 tracklets per camera."""
    rng = np.random.default_rng(seed)
    pids = np.repeat(np.arange(30), 4)
    cams = np.tile([0, 0, 1, 1], 30)
    centres = rng.standard_normal((30, 16))
    feats = centres[pids] + noise * rng.standard_normal((120, 16))
    splits = np.where(np.arange(120) % 4 == 0, 'query', 'gallery')
    return feats.astype(np.float32), pids, cams, splits


def _dump(path, noise):
    feats, pids, cams, splits = _test_set(noise)
    samples = []
    for f, p, c, s in zip(feats, pids, cams, splits):
        sample = DataSample().set_gt_label(int(p))
        sample.set_field(torch.tensor(int(c)), 'camid')
        sample.set_field(torch.from_numpy(f), 'pred_feature')
        sample.set_metainfo(dict(split=str(s)))
        samples.append(sample)
    metric = ReIDMetric(dump_path=str(path))
    metric.process(None, samples)
    return metric.evaluate(len(samples))


def _run(tool, *argv):
    with mock.patch.object(sys, 'argv', ['plot_cmc.py', *argv]):
        tool.main()


def test_plot_from_dumps(tool, tmp_path, capsys):
    good = _dump(tmp_path / 'good.npz', 0.3)
    weak = _dump(tmp_path / 'weak.npz', 3.0)
    out = tmp_path / 'figs' / 'cmc.png'
    _run(tool, str(tmp_path / 'good.npz'), str(tmp_path / 'weak.npz'),
         '--labels', 'good', 'weak', '--max-rank', '20', '--out', str(out))
    image = Image.open(out)
    assert image.size == (1320, 504)
    # Not a blank canvas: curves and bars are drawn.
    assert len(np.unique(np.asarray(image.convert('L')))) > 10
    printed = capsys.readouterr().out
    # The numbers are the metric's.
    for label, metrics in (('good', good), ('weak', weak)):
        assert (f'{label}: mAP {metrics["reid/mAP"]:.2f}, rank-1 '
                f'{metrics["reid/rank1"]:.2f}, mINP '
                f'{metrics["reid/mINP"]:.2f}') in printed
    assert good['reid/mAP'] > weak['reid/mAP']


def test_plot_from_features(tool, tmp_path, capsys):
    feats, pids, cams, splits = _test_set(0.3)
    for split in ('query', 'gallery'):
        rows = splits == split
        np.savez(
            tmp_path / f'{split}.npz',
            features=feats[rows],
            pids=pids[rows],
            camids=cams[rows])
    expected = _dump(tmp_path / 'dump.npz', 0.3)
    out = tmp_path / 'feats.png'
    _run(tool, '--query', str(tmp_path / 'query.npz'), '--gallery',
         str(tmp_path / 'gallery.npz'), '--out', str(out))
    assert Image.open(out).size == (1320, 504)
    # Queries first, then the gallery, as the metric's query-in-gallery
    # protocol: the same mAP as the metric on the same features.
    assert f'mAP {expected["reid/mAP"]:.2f}' in capsys.readouterr().out


def test_plot_errors(tool, tmp_path):
    np.savez(tmp_path / 'bad.npz', features=np.zeros((2, 2)))
    with pytest.raises(KeyError, match="bad.npz has no \\['distmat'"):
        _run(tool, str(tmp_path / 'bad.npz'), '--out', str(tmp_path / 'x.png'))
    with pytest.raises(SystemExit, match='one of the two'):
        _run(tool, '--out', str(tmp_path / 'x.png'))
    with pytest.raises(SystemExit, match='go together'):
        _run(tool, '--query', 'q.npz', '--out', str(tmp_path / 'x.png'))
