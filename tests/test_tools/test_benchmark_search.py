# Copyright (c) mmtfclip contributors. All rights reserved.
"""tools/analysis_tools/benchmark_search.py at a tiny size: one JSON line
per engine; exact and a flat faiss index find the same top-10."""
import json
import os.path as osp

import pytest

from helpers.tiny_demo import run_python

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))


def test_benchmark_search_prints_numbers():
    pytest.importorskip('faiss')
    log = run_python([
        osp.join(ROOT, 'tools', 'analysis_tools',
                 'benchmark_search.py'), '--sizes', '3000', '--dim', '16',
        '--queries', '3', '--factories', 'auto', 'IVF8,Flat', '--nprobe', '8'
    ],
                     cwd=ROOT)
    rows = [json.loads(line) for line in log.splitlines() if line[:1] == '{']
    assert [r['engine'] for r in rows
            ] == ['exact', 'faiss Flat', 'faiss IVF8,Flat nprobe=8']
    # A flat index and an IVF index visiting every list are exact.
    assert [r['recall'] for r in rows] == [1.0, 1.0, 1.0]
    assert all(r['single_query_ms'] > 0 for r in rows)
    assert 'recall@10' in log
