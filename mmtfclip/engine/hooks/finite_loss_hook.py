# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Optional

import torch
from mmengine.hooks import Hook

from mmtfclip.registry import HOOKS


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or infinite loss."""


@HOOKS.register_module()
class FiniteLossHook(Hook):
    """Stop training at the first iteration whose loss is not finite.

    A NaN loss has already made the weights NaN by the time it is logged;
    going on would only write checkpoints of NaN weights over the good
    ones. The hook runs right after each iteration, before
    ``CheckpointHook`` (``VERY_LOW``), and raises naming the iteration and
    every loss term that was not finite, so the last checkpoint written is
    the last good one. The check reads the logged loss values that the
    logger converts to numbers anyway.
    """

    priority = 'ABOVE_NORMAL'

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs:
            return
        values = {
            name: torch.as_tensor(value).detach().float()
            for name, value in outputs.items() if 'loss' in name
        }
        if all(bool(torch.isfinite(v).all()) for v in values.values()):
            return
        bad = ', '.join(f'{name}={v.cpu().tolist()}'
                        for name, v in values.items()
                        if not bool(torch.isfinite(v).all()))
        last = runner.message_hub.get_info('last_ckpt')
        raise NonFiniteLossError(
            f'Non-finite loss at iteration {runner.iter + 1} (epoch '
            f'{runner.epoch + 1}, batch {batch_idx + 1}): {bad}. Training '
            'stopped before anything was saved; the last checkpoint written '
            f'is {last or "none (no checkpoint was written yet)"}.')
