# Copyright (c) mmtfclip contributors. All rights reserved.
import random

import numpy as np
import torch
from mmengine.hooks import Hook

from mmtfclip.registry import HOOKS


@HOOKS.register_module()
class EpochSeedHook(Hook):
    """Seed the main process's random generators from (seed, epoch) at the
    start of every training epoch.

    Randomness drawn in the main process (dropout in SSP, the seeds the data
    loader hands its workers, evaluation between epochs) would otherwise
    depend on everything drawn since the run started, which a run resumed
    from a checkpoint has not drawn: its epochs would differ from the
    uninterrupted run's. Seeded per epoch, a resumed run continues exactly
    as if it had never stopped. mmengine's ``randomness.seed`` is the base
    (already offset by the rank with ``diff_rank_seed=True``); without a
    seed the hook does nothing.
    """

    priority = 'NORMAL'

    def before_train_epoch(self, runner) -> None:
        if runner.seed is None:
            return
        seed = int(
            np.random.SeedSequence([runner.seed,
                                    runner.epoch]).generate_state(1)[0])
        random.seed(seed)
        np.random.seed(seed)
        torch.manual_seed(seed)
