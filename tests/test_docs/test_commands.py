# Copyright (c) mmtfclip contributors. All rights reserved.
"""Every ``tools/*.py`` command the documentation shows names a script that
exists, imports and accepts each ``--option`` the command gives it.

The commands are those of the ```shell blocks of README.md, docs/*.md and
the configs' READMEs, and the inline code spans of their prose that name a
``tools/...py`` script. For each distinct script (and sub-command, as
``analyze_logs.py plot_curve``) the test runs ``SCRIPT [SUB] --help`` once
with this interpreter and checks that every option the pages give it is in
that help. Most commands need a real dataset, CLIP weights, a checkpoint or
GPUs: this option check is what covers them; the commands that run on
generated data run for real in the tools' own tests
(tests/test_tools/, tests/test_docs/test_custom_dataset_doc.py).

The pages also call Python as ``.venv/bin/python`` (the README says so once,
in "Training and testing"), so that their commands work from a new shell
after ``make demo`` without an activated virtual environment: a bare
``python tools/...`` is refused.
"""
import functools
import glob
import os
import os.path as osp
import re
import shlex
import subprocess
import sys
from collections import defaultdict

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
PAGES = sorted(
    [osp.join(ROOT, 'README.md')] + glob.glob(osp.join(ROOT, 'docs', '*.md')) +
    glob.glob(osp.join(ROOT, 'configs', '**', 'README.md'), recursive=True))
SHELL_BLOCK = re.compile(r'```shell\n(.*?)```', flags=re.S)
INLINE = re.compile(r'(?<!`)`([^`\n]*tools/[\w/]+\.py[^`\n]*)`(?!`)')
SCRIPT = re.compile(r'^(?:\./)?(tools/[\w/]+\.py)$')
OPTION = re.compile(r'^\[?(--[A-Za-z][\w-]*)')
SEPARATORS = {'&&', '||', ';', '|'}
BARE_PYTHON = re.compile(r'(?<![\w/.-])python3? +(?:\./)?tools/')


def _page_commands(page):
    """(where, command) for each command line of ``page``."""
    with open(page) as f:
        text = f.read()
    name = osp.relpath(page, ROOT)
    for block in SHELL_BLOCK.findall(text):
        for line in block.replace('\\\n', ' ').splitlines():
            if line.strip():
                yield f'{name}: {line.strip()}', line
    prose = SHELL_BLOCK.sub('', text)
    for span in INLINE.findall(re.sub(r'\s*\n\s*', ' ', prose)):
        yield f'{name}: `{span}`', span


def _tokens(command):
    try:
        return shlex.split(command, comments=True)
    except ValueError:  # an unbalanced quote of a placeholder
        return command.split('#', 1)[0].split()


def _invocations(command):
    """(script, sub-command candidate, options) per script in a command."""
    found = []
    current = None
    for token in _tokens(command):
        if token in SEPARATORS:
            current = None
            continue
        match = SCRIPT.match(token)
        if match:
            current = [match.group(1), None, []]
            found.append(current)
            continue
        if current is None:
            continue
        option = OPTION.match(token)
        if option:
            current[2].append(option.group(1))
        elif current[1] is None and not current[2]:
            current[1] = token  # the first positional word
    return found


def _all_invocations():
    uses = defaultdict(list)  # (script, sub) -> [(option, where)]
    for page in PAGES:
        for where, command in _page_commands(page):
            for script, first, options in _invocations(command):
                uses[script, first].append((options, where))
    return uses


@functools.lru_cache(maxsize=None)
def _help(script, sub=None):
    args = [sys.executable, osp.join(ROOT, script)]
    args += [sub, '--help'] if sub else ['--help']
    env = dict(os.environ, PYTHONPATH=ROOT, COLUMNS='200')
    out = subprocess.run(
        args, capture_output=True, text=True, cwd=ROOT, env=env, timeout=300)
    return out.returncode, out.stdout + out.stderr


def _sub_commands(help_text):
    match = re.search(r'\{([\w,-]+)\}', help_text)
    return set(match.group(1).split(',')) if match else set()


def test_pages_call_the_venv_python():
    bare = []
    for page in PAGES:
        with open(page) as f:
            for number, line in enumerate(f, 1):
                if BARE_PYTHON.search(line):
                    bare.append(f'{osp.relpath(page, ROOT)}:{number}: '
                                f'{line.strip()}')
    assert not bare, ('call the tools as .venv/bin/python tools/...:\n' +
                      '\n'.join(bare))


# The configs docs/custom_dataset.md tells the reader to write.
USER_CONFIGS = {'configs/tfclip_walkers.py', 'configs/tfclip_walkers_cpu.py'}


def test_documented_configs_exist():
    missing = []
    for page in PAGES:
        for where, command in _page_commands(page):
            for token in _tokens(command):
                if (re.match(r'^configs/[\w/.-]+\.py$', token)
                        and token not in USER_CONFIGS
                        and not osp.isfile(osp.join(ROOT, token))):
                    missing.append(f'{where}: {token}')
    assert not missing, 'no such config:\n' + '\n'.join(missing)


def test_documented_tools_accept_their_options():
    uses = _all_invocations()
    assert len({script for script, _ in uses}) >= 10, uses.keys()
    problems = []
    by_script = defaultdict(dict)
    for (script, first), calls in uses.items():
        by_script[script][first] = calls
    for script, firsts in sorted(by_script.items()):
        where = next(iter(firsts.values()))[0][1]
        if not osp.isfile(osp.join(ROOT, script)):
            problems.append(f'{where}: {script} does not exist')
            continue
        code, top = _help(script)
        if code != 0:
            problems.append(f'{where}: {script} --help exits with {code}:\n' +
                            top[-2000:])
            continue
        subs = _sub_commands(top)
        for first, calls in firsts.items():
            sub = first if first in subs else None
            text = top
            if sub:
                code, text = _help(script, sub)
                assert code == 0, text[-2000:]
            for options, where in calls:
                for option in options:
                    if option == '--help':
                        continue
                    if not re.search(re.escape(option) + r'(?![\w-])', text):
                        problems.append(
                            f'{where}: {script}'
                            f'{" " + sub if sub else ""} has no {option}')
    assert not problems, '\n'.join(problems)
