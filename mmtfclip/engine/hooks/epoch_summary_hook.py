# Copyright (c) mmtfclip contributors. All rights reserved.
import time
from typing import Dict, Optional

import torch
from mmengine.hooks import Hook

from mmtfclip.registry import HOOKS


@HOOKS.register_module()
class EpochSummaryHook(Hook):
    """Log the time of each training epoch and evaluation, and peak GPU
    memory.

    The figures go to the text log and, as scalars, to every visualisation
    backend (``train/epoch_time_s``, ``train/peak_memory_mb``,
    ``val/eval_time_s``, ``test/eval_time_s``).

    mmengine's ``LoggerHook`` resets the CUDA peak-memory counter at each
    logging interval, so the epoch peak is tracked here after every
    iteration; this hook's priority (``NORMAL``) runs it before the logger.
    """

    priority = 'NORMAL'

    def __init__(self) -> None:
        self._start: Dict[str, float] = {}
        self._peak_mb = 0.0

    @staticmethod
    def _cuda_peak_mb() -> float:
        if not torch.cuda.is_available():
            return 0.0
        return torch.cuda.max_memory_allocated() / 2**20

    def before_train_epoch(self, runner) -> None:
        self._start['train'] = time.perf_counter()
        self._peak_mb = 0.0
        if torch.cuda.is_available():
            torch.cuda.reset_peak_memory_stats()

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        self._peak_mb = max(self._peak_mb, self._cuda_peak_mb())

    def after_train_epoch(self, runner) -> None:
        elapsed = time.perf_counter() - self._start.pop('train')
        scalars = {'train/epoch_time_s': elapsed}
        # runner.epoch counts finished epochs; mmengine's log lines count
        # from 1, as here.
        msg = f'Epoch {runner.epoch + 1} took {elapsed:.1f} s'
        if torch.cuda.is_available():
            scalars['train/peak_memory_mb'] = self._peak_mb
            msg += f', peak GPU memory {self._peak_mb:.0f} MB'
        runner.logger.info(msg)
        runner.visualizer.add_scalars(scalars, step=runner.epoch + 1)

    def before_val_epoch(self, runner) -> None:
        self._start['val'] = time.perf_counter()

    def after_val_epoch(self,
                        runner,
                        metrics: Optional[Dict[str, float]] = None) -> None:
        self._log_eval_time(runner, 'val')

    def before_test_epoch(self, runner) -> None:
        self._start['test'] = time.perf_counter()

    def after_test_epoch(self,
                         runner,
                         metrics: Optional[Dict[str, float]] = None) -> None:
        self._log_eval_time(runner, 'test')

    def _log_eval_time(self, runner, mode: str) -> None:
        elapsed = time.perf_counter() - self._start.pop(mode)
        runner.logger.info(f'Evaluation ({mode}) took {elapsed:.1f} s')
        # runner.epoch would build the training loop (and its data set) in
        # a test-only run; a test is logged once, at step 0.
        step = runner.epoch if mode == 'val' else 0
        runner.visualizer.add_scalars({f'{mode}/eval_time_s': elapsed},
                                      step=step)
