# Copyright (c) mmtfclip contributors. All rights reserved.
import importlib.util
import json
import os.path as osp
import sys
from unittest import mock

import pytest

_TOOL = osp.join(
    osp.dirname(__file__), '..', '..', 'tools', 'analysis_tools',
    'benchmark_eval.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('benchmark_eval', _TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_test_set_layout(tool):
    _, gallery, q_pids, g_pids, q_cams, g_cams = tool.make_test_set(
        num_query=90, num_gallery=500, num_ids=30, num_cams=6, dim=16, seed=0)
    assert gallery.shape == (500, 16) and len(q_pids) == 90
    assert (g_pids == 0).sum() == 100  # a fifth are distractors
    assert (q_pids > 0).all()
    # Every identity is seen by at least two cameras.
    for pid in range(1, 31):
        assert len(set(g_cams[g_pids == pid])) >= 2


def test_small_run_is_identical(tool, tmp_path, capsys):
    out = tmp_path / 'bench.json'
    argv = [
        'benchmark_eval.py', '--num-query', '60', '--num-gallery', '400',
        '--num-ids', '40', '--repeat', '1', '--rerank-query', '20',
        '--rerank-gallery', '80', '--out',
        str(out)
    ]
    with mock.patch.object(sys, 'argv', argv):
        tool.main()
    report = json.loads(out.read_text())
    # One benchmark per noise level of the default: trained-like and
    # almost random rankings.
    assert [r['noise'] for r in report['evaluate_rank']] == [1.4, 4.0]
    for rank in report['evaluate_rank']:
        assert rank['float64_equal_to_1e_9'] is True
        assert rank['float32']['cmc_equal'] is True
        assert rank['num_gallery'] == 400
    # The trained-like ranking is far better than the random one.
    assert report['evaluate_rank'][0]['mAP'] > report['evaluate_rank'][1][
        'mAP']
    assert report['re_ranking']['identical'] is True
    assert '"speedup"' in capsys.readouterr().out
