# Copyright (c) mmtfclip contributors. All rights reserved.
"""Every relative link of the documentation points at a file that exists."""
import glob
import os.path as osp
import re

import pytest

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PAGES = sorted(
    [osp.join(ROOT, 'README.md')] + glob.glob(osp.join(ROOT, 'docs', '*.md')) +
    glob.glob(osp.join(ROOT, 'configs', '**', 'README.md'), recursive=True))
LINK = re.compile(r'\]\(([^)\s]+)\)')


@pytest.mark.parametrize('page', PAGES, ids=lambda p: osp.relpath(p, ROOT))
def test_relative_links_resolve(page):
    with open(page) as f:
        text = f.read()
    broken = []
    for target in LINK.findall(text):
        if re.match(r'[a-z]+:', target) or target.startswith('#'):
            continue
        path = target.split('#', 1)[0]
        if not osp.exists(osp.join(osp.dirname(page), path)):
            broken.append(target)
    assert not broken, f'{osp.relpath(page, ROOT)}: broken links {broken}'
