# Copyright (c) mmtfclip contributors. All rights reserved.
"""``device_benchmark.sh prepare`` then ``dry-run`` in an environment like
the GPU card's: a fresh virtual environment holding torch and the packages
the card's image has that the benchmarks import, nothing of the OpenMMLab
stack; that comes from the carried ``.whl/site`` alone."""
import json
import os
import os.path as osp
import subprocess
import sys
from importlib import metadata

import pytest

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_SCRIPT = osp.join(_ROOT, 'tools', 'analysis_tools', 'device_benchmark.sh')

# Distributions the card's image holds (the device's package list, read
# 2026-11-17), linked from this environment into the fresh one: torch and
# what it loads, and what mmengine, mmcv-lite, mmpretrain, open_clip and
# mmtfclip import from the card. Anything missing from the carried folder
# then fails the dry run with an ImportError.
CARD_DISTRIBUTIONS = ('torch', 'filelock', 'typing_extensions', 'sympy',
                      'mpmath', 'networkx', 'jinja2', 'markupsafe', 'fsspec',
                      'numpy', 'opencv-python', 'pillow', 'scipy',
                      'matplotlib', 'contourpy', 'cycler', 'fonttools',
                      'kiwisolver', 'pyparsing', 'python-dateutil',
                      'packaging', 'pyyaml', 'rich', 'markdown-it-py', 'mdurl',
                      'pygments', 'regex', 'tqdm', 'safetensors',
                      'torchvision', 'einops', 'click', 'markdown', 'zipp',
                      'h5py')
# The CUDA libraries torch's build links against (on the card as well).
CARD_PREFIXES = ('nvidia-', 'cuda-')

BENCHMARKS = ('train16_fast', 'train64_fast', 'test64_fp32', 'test64_bf16',
              'memory64_bf16', 'train16_plain', 'train64_plain', 'memory_real',
              'train64_fast_cp')
KEYS = ('name', 'task', 'device', 'torch', 'dtype', 'batch', 'clip_shape',
        'ms_per_step', 'sequences_per_s', 'frames_per_s', 'peak_memory',
        'flops_per_step', 'achieved_tflops', 'matmul_peak', 'mfu_vs_bf16_peak',
        'dry_run', 'dry_run_skipped')


def _base_python() -> str:
    """The interpreter this virtual environment was made from."""
    with open(osp.join(sys.prefix, 'pyvenv.cfg')) as f:
        cfg = {
            k.strip(): v.strip()
            for k, v in (line.split('=', 1) for line in f.read().splitlines()
                         if '=' in line)
        }
    home = cfg['home']
    version = f'python{sys.version_info.major}.{sys.version_info.minor}'
    return osp.join(home, version)


def _card_like_venv(root: str) -> str:
    """A fresh venv linking only the card's distributions from ours."""
    subprocess.run([_base_python(), '-m', 'venv', '--without-pip', root],
                   check=True)
    python = osp.join(root, 'bin', 'python')
    site = subprocess.run([
        python, '-c', 'import sysconfig; print(sysconfig.get_path("purelib"))'
    ],
                          check=True,
                          capture_output=True,
                          text=True).stdout.strip()
    names = set(CARD_DISTRIBUTIONS)
    for dist in metadata.distributions():
        name = dist.metadata['Name'].lower()
        if name.startswith(CARD_PREFIXES):
            names.add(name)
    for name in sorted(names):
        dist = metadata.distribution(name)
        tops = {str(f).split('/')[0] for f in dist.files}
        for top in sorted(tops):
            # No scripts outside site-packages; no .pth files, which run
            # code at start-up.
            if top == '..' or top.endswith('.pth'):
                continue
            src = osp.join(str(dist.locate_file('')), top)
            dst = osp.join(site, top)
            if osp.exists(src) and not osp.lexists(dst):
                os.symlink(src, dst)
    return python


# About 70 s of CPU (eleven Python start-ups of the whole stack); on the
# shared 2 cores it took 56 s of wall clock, and 340 s at a load of 12.
@pytest.mark.timeout(900)
def test_device_benchmark_prepare_and_dry_run(tmp_path):
    python = _card_like_venv(str(tmp_path / 'venv'))
    carried = str(tmp_path / 'whl' / 'site')
    env = {
        k: v
        for k, v in os.environ.items() if k not in ('PYTHONPATH', 'PYTHONHOME')
    }
    env.update(OMP_NUM_THREADS='1', WHL_SITE=carried)

    # The fresh environment lacks the OpenMMLab stack until it is carried.
    bare = subprocess.run([python, '-c', 'import torch, cv2; import mmengine'],
                          capture_output=True,
                          text=True,
                          env=env,
                          cwd=str(tmp_path))
    assert "No module named 'mmengine'" in bare.stderr, bare.stderr

    prepare = subprocess.run(['bash', _SCRIPT, 'prepare'],
                             capture_output=True,
                             text=True,
                             env=dict(env, VENV_PYTHON=sys.executable),
                             timeout=300)
    assert prepare.returncode == 0, prepare.stdout + prepare.stderr
    with open(osp.join(carried, 'MANIFEST.txt')) as f:
        manifest = f.read()
    for name in ('mmengine', 'mmcv-lite', 'mmpretrain', 'open_clip_torch'):
        assert f'\n{name} ' in manifest
    assert 'wcwidth/_wcwidth_c' in manifest
    for folder, _, files in os.walk(carried):
        for file in files:
            assert not file.endswith(('.so', '.pyd')), osp.join(folder, file)

    out = tmp_path / 'out'
    run = subprocess.run(['bash', _SCRIPT, 'dry-run'],
                         capture_output=True,
                         text=True,
                         env=dict(env, PYTHON=python, OUT=str(out)),
                         timeout=800)
    log = (out / 'log.txt').read_text()
    assert run.returncode == 0, run.stdout + run.stderr + log[-6000:]
    for bad in ('FAILED', 'SKIPPED', 'Traceback'):
        assert bad not in log, log[-6000:]
    # The fresh environment's interpreter ran, with the carried packages.
    assert 'dry run on the CPU' in log and 'mmengine 0.10' in log
    with open(out / 'results.jsonl') as f:
        results = [json.loads(line) for line in f]
    assert [r['name'] for r in results] == list(BENCHMARKS)
    for r in results:
        missing = [k for k in KEYS if k not in r]
        assert not missing, (r['name'], missing)
        assert r['dry_run'] is True and r['device'] == 'cpu'
        assert r['clip_shape'] == dict(T=4, H=64, W=32)
        assert r['batch'] == 8 and r['frames_per_s'] > 0
        asked_compile = r['name'] in ('train16_fast', 'train64_fast',
                                      'test64_bf16', 'train64_fast_cp')
        assert ('--compile' in r['dry_run_skipped']) == asked_compile
        assert r['compile'] is False
    by_name = {r['name']: r for r in results}
    assert by_name['train16_fast']['fused_optimizer'] is True
    assert 'autocast' in by_name['train16_fast']['amp_note']
    assert by_name['test64_bf16']['cosine_to_fp32_min'] > 0.99
    assert by_name['train64_fast_cp']['checkpointing'] is True
    e2e = by_name['memory_real']['end_to_end']
    # The synthetic set's 8 training identities, 2 cameras, 1 tracklet each.
    assert e2e['tracklets'] == 16 and e2e['frames_per_s'] > 0


_STUB_PYTHON = '''#!/bin/bash
# Stands in for the card's python3: records each benchmark's arguments and
# answers with a JSON object; the script's own JSON handling runs for real.
case "$1" in
  -c) case "$2" in *torch*) echo stub environment; exit 0;; esac ;;
  tools/analysis_tools/benchmark.py)
    echo "$*" >> "$CALLS"
    echo '{"ms_per_step": {"median": 1}, "sequences_per_s": 1,' \\
      '"frames_per_s": 1, "peak_memory": {"gib": 1},' \\
      '"mfu_vs_bf16_peak": 0.1, "task": "stub"}'
    exit 0;;
  tools/misc/make_synthetic_dataset.py) echo "$*" >> "$CALLS"; exit 0;;
esac
exec "$REAL_PYTHON" "$@"
'''


def test_device_benchmark_card_mode_arguments(tmp_path):
    """The card's mode (no argument), with stand-ins for nvidia-smi and the
    card's Python: the ViT-B/16 config, the card's batches and iterations,
    every switch passed on, one JSON line per benchmark."""
    stubs = tmp_path / 'bin'
    stubs.mkdir()
    (stubs / 'nvidia-smi').write_text('#!/bin/sh\necho stub GPU\n')
    (stubs / 'python').write_text(_STUB_PYTHON)
    for stub in stubs.iterdir():
        stub.chmod(0o755)
    calls, out = tmp_path / 'calls.txt', tmp_path / 'out'
    env = dict(
        os.environ,
        PATH=f'{stubs}:{os.environ["PATH"]}',
        PYTHON=str(stubs / 'python'),
        REAL_PYTHON=sys.executable,
        CALLS=str(calls),
        OUT=str(out),
        DATA=str(tmp_path / 'data'))
    run = subprocess.run(['bash', _SCRIPT],
                         capture_output=True,
                         text=True,
                         env=env,
                         timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    lines = calls.read_text().splitlines()
    config = ('configs/tfclip/'
              'tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py')
    bench = [line.split() for line in lines if 'benchmark.py' in line]
    assert len(bench) == len(BENCHMARKS)
    for args in bench:
        assert args[1] == config and '--device' not in args
    fast = {'--amp', '--compile', '--fused-optimizer'}
    assert fast <= set(
        bench[0]) and bench[0][bench[0].index('--batch') + 1] == '16'
    assert fast | {'--checkpointing'} <= set(bench[-1])
    assert '--data' in bench[7] and 'custom_hooks.0.num_workers=14' in bench[7]
    assert any('make_synthetic_dataset.py' in line and '--num-ids 100' in line
               for line in lines)
    with open(out / 'results.jsonl') as f:
        results = [json.loads(line) for line in f]
    assert [r['name'] for r in results] == list(BENCHMARKS)
    assert all('dry_run' not in r for r in results)
