# Copyright (c) mmtfclip contributors. All rights reserved.
"""Every ablation config of configs/tfclip/ablations loads, builds with a
tiny CLIP and runs a training and a test step."""
import glob
import os.path as osp
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.optim import OptimWrapper
from mmpretrain.structures import DataSample

from mmtfclip.registry import HOOKS, MODELS
from mmtfclip.testing import tiny_clip_arch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
ABLATIONS = sorted(
    glob.glob(osp.join(REPO, 'configs', 'tfclip', 'ablations', '*.py')))
NAMES = [osp.basename(p)[:-3] for p in ABLATIONS]
T, H, W, WIDTH, PROJ = 2, 32, 16, 64, 32

# What each config switches, against the full model: (neck type, TMC, MD,
# SSP layers, memory). TMC / MD are None for necks other than TMD.
TMD = 'TemporalMemoryDiffusion'
EXPECTED = {
    # CLIP-ReID's learned text prompts in place of the memory.
    'table2-row1-text-prompts': (None, None, None, None, True),
    'table2-row5-text-prompts-tmd': (TMD, True, True, None, True),
    'table2-row2-memory': (None, None, None, None, True),
    'table2-row3-memory-ssp': (None, None, None, 2, True),
    'table2-row4-memory-tmd': (TMD, True, True, None, True),
    'table2-row6-full': (TMD, True, True, 2, True),
    'table3-a2-tmc': (TMD, True, False, None, True),
    'table3-a5-tmc-ssp': (TMD, True, False, 2, True),
    'table3-md': (TMD, False, True, None, True),
    'table3-md-ssp': (TMD, False, True, 2, True),
    'table5-tap': ('TemporalAvgPool', None, None, None, True),
    'table5-conv1d': ('TemporalConv1d', None, None, None, True),
    'table5-transformer': ('TemporalTransformer', None, None, None, True),
    'table5-transformer-cls': ('TemporalTransformer', None, None, None, True),
    'table6-ssp-depth1': (None, None, None, 1, True),
    'table6-ssp-depth3': (None, None, None, 3, True),
    'table6-ssp-depth4': (None, None, None, 4, True),
    'table7-row2-no-memory': (None, None, None, None, False),
    'table7-row4-no-memory': (TMD, True, True, None, False),
}


def _key(name: str) -> str:
    return name[len('tfclip_ablation-'):-len('_mars')]


def test_every_ablation_is_listed():
    assert sorted(_key(n) for n in NAMES) == sorted(EXPECTED)


def tiny_model(cfg: Config):
    """The config's model with a 2-layer 64-wide CLIP, 4 ids, T=2."""
    model = cfg.model
    model.backbone.update(
        arch=tiny_clip_arch(width=WIDTH, embed_dim=PROJ),
        img_size=(H, W),
        pretrained=None)
    if model.neck is not None:
        model.neck.update(embed_dims=WIDTH, num_frames=T)
        if 'num_heads' in model.neck:
            model.neck.num_heads = 2
    model.head.update(num_classes=4, in_channels=WIDTH, proj_channels=PROJ)
    if 'text_encoder' in model:
        model.text_encoder.update(
            arch=dict(
                width=32,
                layers=1,
                heads=2,
                context_length=77,
                vocab_size=49408,
                output_dim=PROJ),
            pretrained=None)
    if model.head.ssp is not None:
        model.head.ssp.num_heads = 2
    torch.manual_seed(0)
    return MODELS.build(model)


def _samples(labels, cams):
    out = []
    for label, cam in zip(labels, cams):
        sample = DataSample().set_gt_label(label)
        sample.set_field(torch.tensor(cam), 'camid', field_type='data')
        out.append(sample)
    return out


def _clips(num, *shape):
    return [
        torch.randint(0, 256, shape + (3, H, W), dtype=torch.uint8)
        for _ in range(num)
    ]


@pytest.mark.parametrize('path', ABLATIONS, ids=NAMES)
def test_ablation_config_builds_and_runs(path):
    cfg = Config.fromfile(path)
    neck_type, tmc, md, ssp_layers, memory = EXPECTED[_key(
        osp.basename(path)[:-3])]
    model = tiny_model(cfg)

    # The switches of the row, as built.
    assert type(model.neck).__name__ == (neck_type or 'NoneType')
    if neck_type == TMD:
        assert (model.neck.with_tmc, model.neck.with_md) == (tmc, md)
    head = model.head
    assert head.with_memory == memory and head.with_temporal == bool(neck_type)
    ssp = getattr(head, 'ssp', None)
    assert (ssp is not None and len(ssp.layers)) == (ssp_layers or False)
    # The CLIP-Memory is built by its hook, which only a memory needs; the
    # text features of the text-prompt rows by stage 1.
    hooks = [h['type'] for h in cfg.custom_hooks]
    memory_hook = ('PromptLearningHook'
                   if cfg.model.type == 'CLIPReID' else 'CLIPMemoryHook')
    assert hooks == ([memory_hook] if memory else [])
    if memory:
        head.set_memory(torch.randn(4, PROJ))

    data = dict(
        inputs=_clips(4, T), data_samples=_samples([0, 0, 3, 3], [0, 5, 1, 2]))
    optim = OptimWrapper(torch.optim.SGD(model.parameters(), lr=1e-3))
    log_vars = model.train_step(data, optim)
    expected = {'loss', 'loss_id', 'loss_triplet', 'acc_id'}
    # Each branch's ID and triplet terms are logged too.
    branches = ['cls', 'proj'] + (['temporal'] if neck_type else [])
    expected |= {f'{kind}_{b}' for kind in ('id', 'triplet') for b in branches}
    if memory:
        expected |= {'loss_i2t', 'acc_i2t'}
    if neck_type:
        expected.add('loss_frame')
    assert set(log_vars) == expected
    assert all(torch.isfinite(v) for v in log_vars.values())

    model.eval()
    dense = model.test_step(
        dict(inputs=_clips(2, 3, T), data_samples=_samples([7, 9], [0, 4])))
    dims = WIDTH + PROJ + (WIDTH if neck_type else 0)
    assert [s.pred_feature.shape for s in dense] == [(dims, )] * 2
    assert all(torch.isfinite(s.pred_feature).all() for s in dense)


def test_memory_hook_refuses_a_head_without_memory():
    """Why the no-memory configs drop the hook."""
    cfg = Config.fromfile(
        osp.join(REPO, 'configs', 'tfclip', 'ablations',
                 'tfclip_ablation-table7-row2-no-memory_mars.py'))
    hook = HOOKS.build(dict(type='CLIPMemoryHook', pipeline=cfg.test_pipeline))
    runner = SimpleNamespace(model=tiny_model(cfg))
    with pytest.raises(RuntimeError, match='remove the hook'):
        hook.before_train(runner)


@pytest.mark.parametrize('path', ABLATIONS, ids=NAMES)
def test_ablation_config_passes_the_train_check(path):
    """tools/train.py checks every config before any work."""
    from mmtfclip.utils.config_check import check_train_config
    check_train_config(Config.fromfile(path))
