# Copyright (c) mmtfclip contributors. All rights reserved.
"""Fixtures shared by the whole suite.

Everything a test needs is generated here or in the test (tiny CLIP files,
dataset layouts); no binary fixture is committed.
"""
import atexit
import os
import shutil
import sys
import tempfile

import pytest
import torch

# The suite's own helpers (tests/helpers) import as `helpers`, whatever
# pytest's import mode.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

# Two cores on CI: more intra-op threads only add contention.
torch.set_num_threads(min(2, os.cpu_count() or 1))

# Datasets cache their parsed index; keep the suite's caches (also those of
# subprocesses, which inherit the environment) out of the user's ~/.cache.
if 'MMTFCLIP_CACHE_DIR' not in os.environ:
    os.environ['MMTFCLIP_CACHE_DIR'] = tempfile.mkdtemp(
        prefix='mmtfclip-test-cache-')
    atexit.register(shutil.rmtree, os.environ['MMTFCLIP_CACHE_DIR'], True)


@pytest.fixture(scope='session', autouse=True)
def _register_modules():
    from mmtfclip.utils import register_all_modules
    register_all_modules(init_default_scope=True)
