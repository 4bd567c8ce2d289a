# Copyright (c) mmtfclip contributors. All rights reserved.
"""Both CLIP-ReID stages in one mmengine run, and resume in either stage."""
import os.path as osp

import pytest
import torch
from mmengine.config import Config

from helpers.tiny_demo import write_tiny_synthetic_mars
from mmtfclip.engine.hooks import PromptLearningHook
from mmtfclip.engine.hooks.prompt_learning_hook import cosine_warmup_lr
from mmtfclip.registry import RUNNERS
from mmtfclip.utils import replace_key

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..', '..'))
STAGE1_EPOCHS = 4


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    return write_tiny_synthetic_mars(
        str(tmp_path_factory.mktemp('clipreid') / 'data'), tracklets_per_id=2)


def _cfg(data_root, work_dir, name, epochs=1, **extra):
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'clipreid_demo.py'))
    replace_key(cfg._cfg_dict, 'data_root', data_root)
    cfg.merge_from_dict({
        'model.head.num_classes': 8,
        'model.backbone.num_cams': 2,
        'train_dataloader.batch_size': 4,
        'train_dataloader.sampler.batch_size': 4,
        'train_dataloader.sampler.num_instances': 2,
        'train_cfg.max_epochs': epochs,
        'train_cfg.val_interval': 100,
        'default_hooks.checkpoint.interval': 1,
        'work_dir': work_dir,
        'experiment_name': name,
        **extra,
    })
    hook = cfg.custom_hooks[0]
    hook.update(max_epochs=STAGE1_EPOCHS, batch_size=8, save_interval=2)
    # No evaluation before training: not what is tested here.
    cfg.custom_hooks = [hook]
    cfg.val_dataloader = cfg.val_cfg = cfg.val_evaluator = None
    return cfg


def test_schedule_is_the_authors_cosine():
    lrs = [cosine_warmup_lr(e, 3.5e-4, 120, 1e-6, 1e-5, 5) for e in (1, 4)]
    assert lrs == pytest.approx([1e-5 + 3.4e-4 / 5, 1e-5 + 4 * 3.4e-4 / 5])
    assert cosine_warmup_lr(60, 3.5e-4, 120, 1e-6, 1e-5,
                            5) == pytest.approx(1e-6 + 0.5 * (3.5e-4 - 1e-6))
    assert cosine_warmup_lr(120, 3.5e-4, 120, 1e-6, 1e-5, 5) == 1e-6


def test_two_stages_in_one_run_and_resume_in_either(data_root, tmp_path,
                                                    monkeypatch):
    # Uninterrupted: stage 1, then one epoch of stage 2.
    runner = RUNNERS.build(_cfg(data_root, str(tmp_path / 'a'), 'a'))
    model = runner.model
    start = model.prompt_learner.cls_ctx.detach().clone()
    runner.train()
    learned = model.prompt_learner.cls_ctx.detach().clone()
    assert not torch.allclose(start, learned)
    assert not model.prompt_learner.cls_ctx.requires_grad
    with torch.no_grad():
        expected = model.text_features(torch.arange(8))
    torch.testing.assert_close(model.head.clip_memory, expected)
    state = osp.join(str(tmp_path / 'a'), 'prompt_learning.pth')
    assert osp.isfile(state)

    # Killed in stage 1 after the epoch-2 save, then resumed.
    save = PromptLearningHook._save

    def save_then_die(self, path, learner, optimizer, scaler, epoch):
        save(self, path, learner, optimizer, scaler, epoch)
        if epoch == 2:
            raise KeyboardInterrupt

    monkeypatch.setattr(PromptLearningHook, '_save', save_then_die)
    killed = RUNNERS.build(_cfg(data_root, str(tmp_path / 'b'), 'b1'))
    with pytest.raises(KeyboardInterrupt):
        killed.train()
    monkeypatch.setattr(PromptLearningHook, '_save', save)
    resumed = RUNNERS.build(
        _cfg(data_root, str(tmp_path / 'b'), 'b2', resume=True))
    resumed.train()
    torch.testing.assert_close(resumed.model.prompt_learner.cls_ctx, learned)
    torch.testing.assert_close(resumed.model.head.clip_memory,
                               model.head.clip_memory)

    # Resumed in stage 2: the prompts and text features come with the
    # checkpoint, stage 1 is not run again.
    monkeypatch.setattr(PromptLearningHook, '_learn',
                        lambda *args: pytest.fail('stage 1 ran again'))
    stage2 = RUNNERS.build(
        _cfg(data_root, str(tmp_path / 'b'), 'b3', epochs=2, resume=True))
    stage2.train()
    assert stage2.iter > resumed.iter
    torch.testing.assert_close(stage2.model.prompt_learner.cls_ctx, learned)
    torch.testing.assert_close(stage2.model.head.clip_memory,
                               model.head.clip_memory)
