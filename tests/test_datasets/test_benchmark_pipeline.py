# Copyright (c) mmtfclip contributors. All rights reserved.
"""A smoke test of tools/analysis_tools/benchmark_pipeline.py (no timing)."""
import importlib.util
import os
import sys

from mmengine.logging import MMLogger


def test_benchmark_runs_and_prints_both_pipelines(tiny_mars_session,
                                                  monkeypatch):
    root, _ = tiny_mars_session
    repo = os.path.join(os.path.dirname(__file__), '..', '..')
    tool = os.path.join(repo, 'tools', 'analysis_tools',
                        'benchmark_pipeline.py')
    spec = importlib.util.spec_from_file_location('benchmark_pipeline', tool)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, 'argv', [
        tool,
        os.path.join(repo, 'configs', '_base_', 'datasets',
                     'synthetic_mars.py'), '--data-root',
        str(root), '--num-samples', '2', '--repeats', '1'
    ])
    logger = MMLogger.get_current_instance()
    logged = []
    monkeypatch.setattr(logger, 'log',
                        lambda level, msg, *a, **k: logged.append(str(msg)))
    threads = module.torch.get_num_threads(), module.cv2.getNumThreads()
    try:
        module.main()
    finally:
        module.torch.set_num_threads(threads[0])
        module.cv2.setNumThreads(threads[1])
    report = logged[-1]
    assert 'uint8/PIL' in report
    rows = [line.split() for line in report.splitlines()[-2:]]
    assert [row[0] for row in rows] == ['train', 'test']
    assert all(float(v) > 0 for row in rows for v in row[1:4])
