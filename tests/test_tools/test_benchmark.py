# Copyright (c) mmtfclip contributors. All rights reserved.
import importlib.util
import json
import os.path as osp
import subprocess
import sys

import pytest
import torch

from helpers.tiny_demo import TINY_DEMO_OPTIONS, write_tiny_synthetic_mars

_ROOT = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
_TOOL = osp.join(_ROOT, 'tools', 'analysis_tools', 'benchmark.py')
_DEMO = osp.join(_ROOT, 'configs', 'tfclip_demo.py')


def _load_tool():
    spec = importlib.util.spec_from_file_location('benchmark', _TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _run(tmp_path, *extra):
    out = str(tmp_path / 'result.json')
    result = _load_tool().main([
        _DEMO, '--batch', '8', '--iters', '2', '--warmup', '1', '--device',
        'cpu', '--out', out, *extra
    ])
    with open(out) as f:
        assert json.load(f) == json.loads(json.dumps(result))
    return result


def test_benchmark_writes_json_alone_to_stdout(tmp_path):
    """``benchmark.py ... > out.json`` is JSON: the logs go to stderr."""
    out = subprocess.run([
        sys.executable, _TOOL, _DEMO, '--task', 'memory', '--batch', '4',
        '--iters', '1', '--warmup', '0', '--device', 'cpu', '--out',
        str(tmp_path / 'result.json')
    ],
                         capture_output=True,
                         text=True,
                         timeout=300,
                         cwd=_ROOT)
    assert out.returncode == 0, out.stderr[-4000:]
    result = json.loads(out.stdout)
    assert result['task'] == 'memory' and result['batch'] == 4
    with open(tmp_path / 'result.json') as f:
        assert json.load(f) == result
    # The logs are there, on stderr.
    assert 'Wrote' in out.stderr and 'mmengine' in out.stderr


def _check_common(result, task, batch=8):
    assert result['task'] == task
    assert result['device'] == 'cpu'
    assert result['torch'] == torch.__version__
    assert result['batch'] == batch
    assert result['clip_shape'] == dict(T=4, H=64, W=32)
    assert 'pretrained=None' in result['weights']
    ms = result['ms_per_step']
    assert 0 < ms['median'] <= ms['p90'] and ms['mean'] > 0
    # 2 steps of 8 sequences of T = 4 frames.
    assert result['frames_per_s'] == pytest.approx(4 *
                                                   result['sequences_per_s'])
    assert result['sequences_per_s'] == pytest.approx(16 / result['wall_s'])
    assert result['peak_memory']['bytes'] > 0
    assert result['flops_per_step'] > 0
    for peak in result['matmul_peak'].values():
        assert peak['tflops'] > 0
    bf16_peak = result['matmul_peak']['bfloat16']['tflops']
    assert result['mfu_vs_bf16_peak'] == pytest.approx(
        result['achieved_tflops'] / bf16_peak)


def test_benchmark_train_test_memory(tmp_path):
    train = _run(tmp_path, '--task', 'train', '--fused-optimizer')
    _check_common(train, 'train')
    assert train['optim_wrapper'] == 'OptimWrapper'
    assert train['fused_optimizer'] is True
    assert 'x3' in train['flops_method']

    test = _run(tmp_path, '--task', 'test')
    _check_common(test, 'test')
    memory = _run(tmp_path, '--task', 'memory')
    _check_common(memory, 'memory')
    # A training step counts 3x a forward pass of the full model; the test
    # embedding is that forward pass (same encoder, neck and head), and the
    # memory path is the encoder alone.
    assert train['flops_per_step'] > 2 * test['flops_per_step']
    assert memory['flops_per_step'] < test['flops_per_step']
    # The encoder of the demo: 2 blocks of width 128 on 1 + 8 x 4 tokens,
    # 32 frames; the counted memory path holds at least those products.
    tokens, width, frames = 33, 128, 32
    vit = 2 * 2 * frames * (tokens * 12 * width**2 + 2 * tokens**2 * width)
    assert memory['flops_per_step'] >= vit


def test_benchmark_amp_and_checkpointing(tmp_path):
    test = _run(tmp_path, '--task', 'test', '--amp')
    _check_common(test, 'test')
    assert test['dtype'] == 'bfloat16 autocast'
    assert set(test['matmul_peak']) == {'bfloat16'}
    assert test['cosine_to_fp32_min'] > 0.99
    train = _run(tmp_path, '--task', 'train', '--amp', '--checkpointing')
    _check_common(train, 'train')
    assert train['checkpointing'] is True
    assert 'autocast' in train['amp_note']


def test_benchmark_rejects_configs_without_clip_shape(tmp_path):
    tool = _load_tool()
    args = tool.parse_args([_DEMO, '--task', 'test'])
    cfg = tool.load_config(args)
    del cfg.model.backbone['img_size']
    with pytest.raises(KeyError, match='img_size'):
        tool.clip_shape(cfg, type('Model', (), dict(num_frames=4))())


def test_fused_adam_with_the_schedule_matches_plain_adam():
    """fused=True works through mmengine with the recipe's param-wise lrs."""
    from mmengine.config import Config
    from mmengine.optim import build_optim_wrapper

    from mmtfclip.registry import MODELS

    tool = _load_tool()
    cfg = tool.load_config(tool.parse_args([_DEMO, '--task', 'train']))
    schedule = Config.fromfile(
        osp.join(_ROOT, 'configs', '_base_', 'schedules',
                 'tfclip_adam-5e-6_80e.py'))
    params = []
    for fused in (False, True):
        torch.manual_seed(0)
        model = MODELS.build(cfg.model)
        tool.fill_memory(model)
        optim_cfg = schedule.optim_wrapper.copy()
        optim_cfg.optimizer = dict(optim_cfg.optimizer, lr=1e-3, fused=fused)
        wrapper = build_optim_wrapper(model, optim_cfg)
        assert wrapper.optimizer.defaults['fused'] is fused
        # The param-wise rules still split the parameters into groups.
        assert {g['lr'] for g in wrapper.param_groups} >= {1e-3, 2e-3, 1e-2}
        data = tool.synthetic_batch(8, (4, 64, 32), 48, 3, torch.device('cpu'))
        # One step: the gradients are then bitwise the same. Later steps
        # drift apart on parameters whose exact gradient is zero (the
        # attention key biases, biases before a normalisation), where Adam
        # normalises rounding noise, whatever the implementation.
        model.train_step(data, wrapper)
        params.append(dict(model.named_parameters()))
    for name, value in params[0].items():
        torch.testing.assert_close(
            params[1][name],
            value,
            atol=1e-6,
            rtol=1e-5,
            msg=lambda m, name=name: f"{name}: {m}")


def test_benchmark_real_test_batches(tmp_path):
    """--data real times the config's test loader: batches of tracklets
    with different numbers of dense clips."""
    data_root = write_tiny_synthetic_mars(str(tmp_path / 'data'))
    out = str(tmp_path / 'result.json')
    result = _load_tool().main([
        _DEMO, '--task', 'test', '--data', 'real', '--iters', '2', '--warmup',
        '1', '--device', 'cpu', '--out', out, '--cfg-options',
        *TINY_DEMO_OPTIONS, 'test_dataloader.num_workers=0',
        f'test_dataloader.dataset.datasets.0.data_root={data_root}',
        f'test_dataloader.dataset.datasets.1.data_root={data_root}'
    ])
    assert result['task'] == 'test' and result['data'] == 'real'
    # The demo's test batch: 8 tracklets.
    assert result['batch'] == 8
    assert result['sequences_per_s'] > 0 and result['frames_per_s'] > 0
    assert result['flops_per_step'] > 0
