# Copyright (c) mmtfclip contributors. All rights reserved.
"""Copy installed pure-Python distributions into a folder for PYTHONPATH.

``device_benchmark.sh prepare`` runs this with the project's ``.venv``
Python to fill ``.whl/site`` for a GPU machine that has torch but not the
OpenMMLab stack, and cannot reach a package registry. Its Python may differ
from ours (3.12 there, 3.11 here), so only code that runs on any Python 3
may travel. Each distribution is checked three ways before anything of it
is copied:

* its ``*.dist-info/WHEEL`` says ``Root-Is-Purelib: true`` and every
  ``Tag:`` is ``py3-none-any`` (or ``py2-none-any``, ``py2.py3-none-any``):
  the wheel was built for no interpreter, ABI or platform;
* none of its files (its ``RECORD``) is a compiled module: no suffix of
  ``importlib.machinery.EXTENSION_SUFFIXES``, no ``.so``, ``.pyd``,
  ``.dylib`` or ``.dll``;
* each copied file has the sha256 its ``RECORD`` gives, so what travels is
  what the wheel installed.

A distribution whose wheel holds an *optional* extension module with a
Python fallback (``--optional-extension NAME``, e.g. wcwidth, whose
``__init__`` falls back to its Python implementation when
``wcwidth._wcwidth_c`` does not import) is copied without its compiled
files, and the import of the copy is then checked to use the fallback.
Anything else that fails a check stops the copy with a message naming the
distribution and the file.

The files of each distribution's ``RECORD`` are copied (its ``.dist-info``
included, so that ``importlib.metadata`` finds its version), except
scripts outside site-packages, byte code and the top-level test packages
some wheels ship (``tests``, ``yapftests``). ``MANIFEST.txt`` in the
destination lists what was copied and how it was checked.

Example::

    .venv/bin/python tools/analysis_tools/copy_pure_packages.py .whl/site \\
        mmengine mmcv-lite --optional-extension wcwidth
"""
import argparse
import base64
import hashlib
import importlib.machinery
import os
import os.path as osp
import re
import shutil
import subprocess
import sys
from importlib import metadata
from typing import Dict, List

COMPILED_SUFFIXES = tuple(
    sorted(
        set(importlib.machinery.EXTENSION_SUFFIXES)
        | {'.so', '.pyd', '.dylib', '.dll'}))
PURE_TAG = re.compile(r'^py[23](\.py[23])?-none-any$')
SKIPPED_TOP_LEVEL = ('tests', 'yapftests')


class NotPureError(RuntimeError):
    """A distribution would carry code built for one interpreter."""


def is_compiled(path: str) -> bool:
    """Whether a file name is a compiled module or shared library."""
    name = osp.basename(path)
    return name.endswith(COMPILED_SUFFIXES) or '.so.' in name


def wheel_tags(dist: metadata.Distribution) -> Dict:
    """``Root-Is-Purelib`` and the ``Tag`` lines of a dist-info's WHEEL."""
    text = dist.read_text('WHEEL')
    if text is None:
        raise NotPureError(f'{dist.metadata["Name"]}: its dist-info has no '
                           'WHEEL file, so nothing says how it was built.')
    purelib, tags = None, []
    for line in text.splitlines():
        key, _, value = line.partition(':')
        if key.strip() == 'Root-Is-Purelib':
            purelib = value.strip().lower() == 'true'
        elif key.strip() == 'Tag':
            tags.append(value.strip())
    return dict(purelib=purelib, tags=tags)


def _sha256(path: str) -> str:
    with open(path, 'rb') as f:
        digest = hashlib.sha256(f.read()).digest()
    return 'sha256=' + base64.urlsafe_b64encode(digest).decode().rstrip('=')


def copy_distribution(name: str, dest: str, optional_extension: bool) -> Dict:
    """Check one installed distribution and copy its files to ``dest``.

    Args:
        name (str): The distribution's name (``mmcv-lite``, not ``mmcv``).
        dest (str): The folder to copy into.
        optional_extension (bool): Leave out compiled files instead of
            refusing the distribution (its code must fall back to Python).

    Returns:
        dict: What was copied and how it was checked.
    """
    try:
        dist = metadata.distribution(name)
    except metadata.PackageNotFoundError:
        raise NotPureError(f'{name}: not installed in {sys.prefix}.')
    tags = wheel_tags(dist)
    pure = tags['purelib'] is True and tags['tags'] and all(
        PURE_TAG.match(t) for t in tags['tags'])
    if not pure and not optional_extension:
        raise NotPureError(
            f'{name}: its WHEEL says Root-Is-Purelib: {tags["purelib"]}, '
            f'Tag: {", ".join(tags["tags"])}; only py3-none-any wheels run '
            'on another Python.')
    copied, left_out, size = 0, [], 0
    for file in dist.files or []:
        rel = str(file)
        parts = rel.split('/')
        if (parts[0] == '..' or parts[0] in SKIPPED_TOP_LEVEL
                or '__pycache__' in parts or rel.endswith('.pyc')):
            continue
        src = str(file.locate())
        if is_compiled(rel):
            if not optional_extension:
                raise NotPureError(
                    f'{name}: {rel} is a compiled module, though its WHEEL '
                    'says pure.')
            left_out.append(rel)
            continue
        if file.hash is not None and _sha256(src) != (
                f'{file.hash.mode}={file.hash.value}'):
            raise NotPureError(f'{name}: {src} differs from the sha256 its '
                               'RECORD gives (edited after installing?).')
        target = osp.join(dest, rel)
        os.makedirs(osp.dirname(target), exist_ok=True)
        shutil.copyfile(src, target)
        copied += 1
        size += osp.getsize(target)
    return dict(
        name=dist.metadata['Name'],
        version=dist.version,
        tags=tags['tags'],
        purelib=tags['purelib'],
        files=copied,
        bytes=size,
        left_out=left_out)


def check_fallback(dest: str, module: str) -> None:
    """Import ``module`` from ``dest`` alone in a fresh interpreter."""
    code = (f'import sys; sys.path.insert(0, {dest!r}); import {module}; '
            f'f = {module}.__file__; '
            f'assert f.startswith({dest!r}), f')
    out = subprocess.run([sys.executable, '-S', '-c', code],
                         capture_output=True,
                         text=True)
    if out.returncode != 0:
        raise NotPureError(
            f'{module}: the copy without its compiled files does not import '
            f'(no Python fallback?):\n{out.stderr[-2000:]}')


def main(argv: List[str] = None) -> List[Dict]:
    parser = argparse.ArgumentParser(
        description='Copy pure-Python distributions into a folder')
    parser.add_argument('dest', help='the folder to fill (emptied first)')
    parser.add_argument('names', nargs='+', help='distribution names')
    parser.add_argument(
        '--optional-extension',
        nargs='*',
        default=[],
        help='distributions whose compiled modules are optional: copied '
        'without them, then imported to check the Python fallback')
    args = parser.parse_args(argv)
    if osp.exists(args.dest):
        shutil.rmtree(args.dest)
    os.makedirs(args.dest)
    records = []
    for name in [*args.names, *args.optional_extension]:
        records.append(
            copy_distribution(name, args.dest, name
                              in args.optional_extension))
    for record in records:
        if record['left_out']:
            top = {f.split('/')[0] for f in record['left_out']}
            for module in sorted(top):
                check_fallback(args.dest, module)
    lines = [
        f'# Copied from {sys.prefix} (Python {sys.version.split()[0]}) by '
        'tools/analysis_tools/copy_pure_packages.py: each WHEEL says '
        'Root-Is-Purelib: true and py*-none-any, no file is a compiled '
        'module, every file matches its RECORD sha256.'
    ]
    for r in records:
        note = ''
        if r['left_out']:
            note = (' (its WHEEL says ' + ', '.join(r['tags']) +
                    '; optional compiled files left out, Python fallback '
                    'imported: ' + ', '.join(r['left_out']) + ')')
        lines.append(f'{r["name"]} {r["version"]}: {r["files"]} files, '
                     f'{r["bytes"] / 2**20:.1f} MiB{note}')
    with open(osp.join(args.dest, 'MANIFEST.txt'), 'w') as f:
        f.write('\n'.join(lines) + '\n')
    print('\n'.join(lines))
    return records


if __name__ == '__main__':
    try:
        main()
    except NotPureError as e:
        sys.exit(f'copy_pure_packages: {e}')
