# Copyright (c) mmtfclip contributors. All rights reserved.
"""The optimizer and the lr schedule of the reproduction configs against the
authors' rules, written out here from their code:

* ``solver/make_optimizer_prompt.py`` (``make_optimizer_2stage``): each
  trainable parameter starts at BASE_LR and WEIGHT_DECAY; ``"bias" in key``
  gives BASE_LR * BIAS_LR_FACTOR and WEIGHT_DECAY_BIAS; then LARGE_FC_LR
  multiplies by 10 when ``"classifier_proj_temp"`` or ``"arcface"`` is in the
  key, and LARGE_Prompt_LR by 10 again for ``"SAT"`` / ``"prompts_generator"``.
* ``solver/lr_scheduler.py`` (``WarmupMultiStepLR``), stepped once per epoch
  (``processor/processor_clipreid_stage2.py``): factor
  ``0.1 * (1 - e / 10) + e / 10`` for ``e < 10``, times
  ``0.1 ** bisect_right([30, 50, 70], e)``.
* ``configs/vit_clipreid.yml`` SOLVER.STAGE2: BASE_LR 5e-6, WEIGHT_DECAY and
  WEIGHT_DECAY_BIAS 1e-4, BIAS_LR_FACTOR 2, WARMUP_FACTOR 0.1,
  WARMUP_ITERS 10, STEPS [30, 50, 70], GAMMA 0.1, MAX_EPOCHS 80.
"""
import importlib.util
import logging
import os.path as osp
from bisect import bisect_right

import pytest
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.logging import MMLogger
from mmengine.optim import OptimWrapper, build_optim_wrapper

from mmtfclip.engine.optimizers import TFCLIPOptimWrapperConstructor
from mmtfclip.registry import MODELS, PARAM_SCHEDULERS
from mmtfclip.testing import tiny_clip_arch

REPO = osp.dirname(
    osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
SCHEDULE = osp.join(REPO, 'configs', '_base_', 'schedules',
                    'tfclip_adam-5e-6_80e.py')

# Their SOLVER.STAGE2 values (configs/vit_clipreid.yml).
BASE_LR, WEIGHT_DECAY, WEIGHT_DECAY_BIAS, BIAS_LR_FACTOR = 5e-6, 1e-4, 1e-4, 2
WARMUP_FACTOR, WARMUP_ITERS, STEPS, GAMMA, EPOCHS = 0.1, 10, [30, 50, 70], \
    0.1, 80


def authors_lr_and_decay(key):
    lr, decay = BASE_LR, WEIGHT_DECAY
    if 'bias' in key:
        lr, decay = BASE_LR * BIAS_LR_FACTOR, WEIGHT_DECAY_BIAS
    if 'classifier_proj_temp' in key or 'arcface' in key:
        lr = lr * 10
    if 'SAT' in key or 'prompts_generator' in key:
        lr = lr * 10
    return lr, decay


def authors_factor(epoch):
    warmup = 1.0
    if epoch < WARMUP_ITERS:
        alpha = epoch / WARMUP_ITERS
        warmup = WARMUP_FACTOR * (1 - alpha) + alpha
    return warmup * GAMMA**bisect_right(STEPS, epoch)


def _converter():
    spec = importlib.util.spec_from_file_location(
        'tfclip_official_to_mmtfclip',
        osp.join(REPO, 'tools', 'model_converters',
                 'tfclip_official_to_mmtfclip.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _tiny_mars_cfg():
    """configs/tfclip_mars.py with a 2-layer 64-wide CLIP: the parameter
    names of the real model, no CLIP file."""
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'tfclip_mars.py'))
    cfg.model.backbone.update(arch=tiny_clip_arch(), pretrained=None)
    cfg.model.neck.update(embed_dims=64, num_heads=2)
    cfg.model.head.update(in_channels=64, proj_channels=32)
    return cfg


def _lrs_per_epoch(wrapper, scheduler_cfgs, epochs):
    """lr of each parameter (by id) at each epoch, stepping the schedulers
    once per epoch as ParamSchedulerHook does for by_epoch schedulers."""
    schedulers = [
        PARAM_SCHEDULERS.build(s, default_args=dict(optimizer=wrapper))
        for s in scheduler_cfgs
    ]
    lrs = []
    for _ in range(epochs):
        lrs.append({
            id(g['params'][0]): g['lr']
            for g in wrapper.optimizer.param_groups
        })
        for s in schedulers:
            s.step()
    return lrs


class _Tiny(nn.Module):

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.frozen = nn.Linear(4, 4)
        self.frozen.requires_grad_(False)
        self.head = nn.Module()
        self.head.temporal_classifier = nn.Linear(4, 2, bias=False)


def test_layernorm_bias_gets_the_bias_lr_at_epoch_0():
    cfg = Config.fromfile(SCHEDULE)
    model = _Tiny()
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = _lrs_per_epoch(wrapper, cfg.param_scheduler, 1)[0]
    # mmengine's bias_lr_mult skips normalisation layers; their rule does
    # not: LayerNorm bias at 2 x 5e-6 x warm-up factor 0.1.
    assert lrs[id(model.norm.bias)] == pytest.approx(1e-6, rel=1e-9)
    assert lrs[id(model.norm.weight)] == pytest.approx(5e-7, rel=1e-9)
    assert lrs[id(model.fc.bias)] == pytest.approx(1e-6, rel=1e-9)
    assert lrs[id(model.head.temporal_classifier.weight)] == pytest.approx(
        5e-6, rel=1e-9)
    # Frozen parameters stay out of the optimizer, as theirs.
    assert id(model.frozen.weight) not in lrs
    decays = {
        id(g['params'][0]): g['weight_decay']
        for g in wrapper.optimizer.param_groups
    }
    assert set(decays.values()) == {1e-4}


def test_warmup_factor_at_epochs_1_and_10():
    cfg = Config.fromfile(SCHEDULE)
    model = nn.Linear(2, 2, bias=False)
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    lrs = [
        lr[id(model.weight)]
        for lr in _lrs_per_epoch(wrapper, cfg.param_scheduler, 12)
    ]
    factors = [lr / 5e-6 for lr in lrs]
    assert factors[0] == pytest.approx(0.1)
    # 0.1 * (1 - 1/10) + 1/10, not LinearLR(end=10)'s 0.2.
    assert factors[1] == pytest.approx(0.19)
    assert factors[9] == pytest.approx(0.91)
    # Full rate from epoch 10 on, not from epoch 9.
    assert factors[10] == pytest.approx(1.0)
    assert factors[11] == pytest.approx(1.0)


def test_mars_config_lr_and_decay_of_every_parameter_and_epoch():
    """The "Done when" check: every trainable parameter of
    configs/tfclip_mars.py, all 80 epochs, against the authors' rules on
    the authors' name of the same parameter."""
    converter = _converter()
    cfg = _tiny_mars_cfg()
    model = MODELS.build(cfg.model)
    assert cfg.optim_wrapper.type == 'AmpOptimWrapper'
    wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
    assert cfg.train_cfg.max_epochs == EPOCHS
    lrs = _lrs_per_epoch(wrapper, cfg.param_scheduler, EPOCHS)
    decays = {
        id(g['params'][0]): g['weight_decay']
        for g in wrapper.optimizer.param_groups
    }

    # Their trainable parameters under our names: every key of their layout
    # but the buffers, the BNNecks' frozen biases and the four tensors their
    # forward pass never uses (never updated, and absent here).
    theirs = {}
    for key in converter.expected_keys(
            visual_depth=2, tmd_depth=1, ssp_depth=2, with_cameras=True):
        if key in converter.UNUSED_KEYS or key.endswith(
            ('running_mean', 'running_var', 'num_batches_tracked')):
            continue
        if key.startswith('bottleneck') and key.endswith('.bias'):
            continue
        theirs.setdefault(converter.map_key(key), []).append(key)
    ours = {n: p for n, p in model.named_parameters() if p.requires_grad}
    assert sorted(ours) == sorted(theirs)
    assert len(decays) == len(ours)

    checked_layernorm_biases = 0
    for name, param in ours.items():
        # SSP's q, k and v weights are one in_proj_weight here.
        rules = {authors_lr_and_decay(key) for key in theirs[name]}
        assert len(rules) == 1, name
        (lr, decay), = rules
        assert decays[id(param)] == pytest.approx(decay, rel=1e-12), name
        for epoch in range(EPOCHS):
            assert lrs[epoch][id(param)] == pytest.approx(
                lr * authors_factor(epoch), rel=1e-9), (name, epoch)
        checked_layernorm_biases += name.endswith('bias') and any(
            s in name for s in ('ln_', 'norm', 'proj.0.', 'visual_proj.2.'))
    # ln_pre, ln_post, 2 x (ln_1, ln_2); TMD's 3; SSP's 4 + 2 x 3.
    assert checked_layernorm_biases == 2 + 4 + 3 + 10


def test_amp_falls_back_to_fp32_without_a_gpu(monkeypatch):
    import mmtfclip.engine.optimizers.tfclip_optim_wrapper_constructor as mod
    monkeypatch.setattr(mod, 'get_device', lambda: 'cpu')
    cfg = Config.fromfile(SCHEDULE)
    logger = MMLogger.get_current_instance()
    records = []
    handler = logging.Handler()
    handler.emit = records.append
    logger.addHandler(handler)
    try:
        wrapper = build_optim_wrapper(_Tiny(), cfg.optim_wrapper)
    finally:
        logger.removeHandler(handler)
    assert type(wrapper) is OptimWrapper
    lines = [
        r.getMessage() for r in records if 'AmpOptimWrapper' in r.getMessage()
    ]
    assert len(lines) == 1 and 'fp32' in lines[0]
    # A plain OptimWrapper builds without a word.
    records.clear()
    fp32 = dict(cfg.optim_wrapper, type='OptimWrapper')
    del fp32['dtype'], fp32['loss_scale']
    logger.addHandler(handler)
    try:
        build_optim_wrapper(_Tiny(), fp32)
    finally:
        logger.removeHandler(handler)
    assert not [r for r in records if 'AmpOptimWrapper' in r.getMessage()]


def test_paramwise_cfg_is_checked():
    optim = dict(optimizer=dict(type='Adam', lr=1e-3))
    with pytest.raises(KeyError, match='norm_decay_mult'):
        TFCLIPOptimWrapperConstructor(optim, dict(norm_decay_mult=0.0))
    with pytest.raises(KeyError, match='lr_mul'):
        TFCLIPOptimWrapperConstructor(
            optim, dict(custom_keys={'head': dict(lr_mul=2.0)}))
    # Matching custom keys multiply, after the bias rule.
    model = _Tiny()
    constructor = TFCLIPOptimWrapperConstructor(
        optim,
        dict(
            bias_lr_mult=2.0,
            bias_decay_mult=0.5,
            custom_keys={
                'fc': dict(lr_mult=3.0),
                'bias': dict(lr_mult=5.0, decay_mult=2.0)
            }))
    groups = {id(g['params'][0]): g for g in constructor.param_groups(model)}
    assert groups[id(model.fc.bias)]['lr'] == pytest.approx(1e-3 * 2 * 3 * 5)
    assert groups[id(model.fc.weight)]['lr'] == pytest.approx(3e-3)
    assert groups[id(model.norm.bias)]['weight_decay'] == 0.0
    assert torch.is_tensor(groups[id(model.norm.bias)]['params'][0])
