# Copyright (c) mmtfclip contributors. All rights reserved.
"""EpochSeedHook: the random numbers of an epoch depend on (seed, epoch)
only, not on what was drawn before."""
import random
from types import SimpleNamespace

import numpy as np
import torch

from mmtfclip.engine.hooks import EpochSeedHook


def _draws(seed, epoch, consumed_before=0):
    torch.manual_seed(123)
    torch.rand(consumed_before)
    np.random.rand(consumed_before)
    EpochSeedHook().before_train_epoch(SimpleNamespace(seed=seed, epoch=epoch))
    return (torch.rand(3).tolist(), np.random.rand(3).tolist(),
            random.random())


def test_epoch_draws_ignore_the_past():
    # A resumed run has drawn nothing before epoch 2; the straight run has.
    assert _draws(0, 2) == _draws(0, 2, consumed_before=1000)
    assert _draws(0, 2) != _draws(0, 3)
    assert _draws(0, 2) != _draws(1, 2)


def test_no_seed_leaves_the_generators_alone():
    torch.manual_seed(5)
    expected = torch.rand(2)
    torch.manual_seed(5)
    EpochSeedHook().before_train_epoch(SimpleNamespace(seed=None, epoch=1))
    assert torch.equal(torch.rand(2), expected)
