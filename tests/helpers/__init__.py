# Copyright (c) mmtfclip contributors. All rights reserved.
"""Helpers of the test suite only (importable as ``helpers``: the suite's
``conftest.py`` puts ``tests/`` on ``sys.path``).

- :mod:`helpers.datasets`: tiny copies of the LS-VID, iLIDS-VID and
  PRID-2011 layouts;
- :mod:`helpers.tiny_demo`: the smallest demo setting and a runner for the
  project's scripts.

The tiny CLIP writers stay in :mod:`mmtfclip.testing`:
``tools/analysis_tools/verify_against_official.py`` uses them at run time.
"""
