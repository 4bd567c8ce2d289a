# Copyright (c) mmtfclip contributors. All rights reserved.
"""The CLIP-ReID configs load, pass the training checks and hold the
authors' settings."""
import os.path as osp

import pytest
from mmengine.config import Config

from mmtfclip.utils.config_check import check_train_config

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# config: (identities, cameras of SIE, stride, query in gallery)
CONFIGS = {
    'clipreid_market1501.py': (751, 0, 16, False),
    'clipreid_msmt17.py': (1041, 0, 16, False),
    'clipreid/clipreid_vit-b16-clip-openai-pre-sie-olp_1xb64-60e_msmt17.py':
    (1041, 15, 12, False),
    'clipreid_mars.py': (625, 6, 16, True),
    'clipreid_demo.py': (48, 3, 8, True),
}


@pytest.mark.parametrize('name', sorted(CONFIGS))
def test_clipreid_config(name):
    cfg = Config.fromfile(osp.join(REPO, 'configs', name))
    check_train_config(cfg)
    ids, cams, stride, query_in_gallery = CONFIGS[name]
    model = cfg.model
    assert model.type == 'CLIPReID' and model.head.type == 'CLIPReIDHead'
    assert model.head.num_classes == ids
    assert model.backbone.num_cams == cams
    assert model.backbone.stride_size == stride
    assert model.text_encoder.pretrained == model.backbone.pretrained
    assert cfg.val_evaluator.query_in_gallery == query_in_gallery
    hook, = cfg.custom_hooks[:1]
    assert hook.type == 'PromptLearningHook'
    if name != 'clipreid_demo.py':
        # The authors' stage 1 and stage 2.
        assert (hook.max_epochs, hook.batch_size,
                hook.optimizer.lr) == (120, 64, 3.5e-4)
        assert cfg.optim_wrapper.optimizer.lr == 5e-6
        assert cfg.train_dataloader.sampler.num_instances == 4
