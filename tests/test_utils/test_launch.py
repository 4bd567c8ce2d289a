# Copyright (c) mmtfclip contributors. All rights reserved.
import pytest
import torch
from mmengine.config import Config

from mmtfclip.utils.launch import amp_dtype, set_dataloader_defaults


def _cfg(**loader):
    return Config(dict(train_dataloader=dict(batch_size=2, **loader)))


def test_dataloader_defaults_fill_in_what_can_work():
    cfg = _cfg(num_workers=0)
    set_dataloader_defaults(cfg)
    loader = cfg.train_dataloader
    assert loader.collate_fn == dict(type='default_collate')
    assert loader.pin_memory == torch.cuda.is_available()
    # persistent_workers raises with num_workers=0 in PyTorch.
    assert loader.persistent_workers is False

    cfg = _cfg(num_workers=2)
    set_dataloader_defaults(cfg)
    assert cfg.train_dataloader.persistent_workers is True


def test_command_line_flags_override_the_config():
    cfg = _cfg(num_workers=2, pin_memory=True, persistent_workers=True)
    set_dataloader_defaults(cfg, pin_memory=False, persistent_workers=False)
    assert cfg.train_dataloader.pin_memory is False
    assert cfg.train_dataloader.persistent_workers is False


@pytest.mark.skipif(torch.cuda.is_available(), reason='needs a CPU-only box')
def test_amp_needs_a_gpu():
    with pytest.raises(RuntimeError, match='--amp needs a CUDA GPU'):
        amp_dtype()
