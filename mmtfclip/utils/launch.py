# Copyright (c) mmtfclip contributors. All rights reserved.
"""What ``tools/train.py`` and ``tools/test.py`` share before the Runner.

Two things here are not in mmengine:

* CPU-only distributed runs. mmengine 0.10.7's ``init_dist`` calls
  ``torch.cuda.set_device`` and its DDP wrapper passes ``device_ids``; both
  fail without CUDA. When CUDA is absent we initialise a gloo process group
  from the ``torchrun`` environment first (mmengine then keeps it) and wrap
  the model with ``device_ids=None``. The same ``dist_train.sh`` thus runs
  CPU processes on a laptop or in CI.
* ``--amp`` picks bf16 where the GPU supports it (no loss scaling needed) and
  fp16 with dynamic loss scaling otherwise.
"""
import os
from copy import deepcopy

import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log


def setup_distributed(cfg: Config, launcher: str) -> None:
    """Prepare a distributed run on machines without CUDA.

    Does nothing for ``launcher='none'`` or when CUDA is available: mmengine
    sets those up itself.

    Args:
        cfg (Config): The config, modified in place.
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.
    """
    cfg.launcher = launcher
    if launcher == 'none' or torch.cuda.is_available():
        return
    if launcher == 'slurm':
        raise RuntimeError(
            'CPU-only distributed runs are supported with torchrun '
            '(`--launcher pytorch`, tools/dist_train.sh); Slurm jobs need '
            'GPUs.')
    if not torch_dist.is_initialized():
        missing = [
            k for k in ('RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT')
            if k not in os.environ
        ]
        if missing:
            raise RuntimeError(
                f'--launcher {launcher} needs the environment variables '
                f'{missing}; start the script with tools/dist_train.sh or '
                '`python -m torch.distributed.run`.')
        torch_dist.init_process_group(backend='gloo')
    env_cfg = cfg.setdefault('env_cfg', ConfigDict())
    env_cfg['dist_cfg'] = dict(backend='gloo')
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel',
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    print_log(
        f'CUDA is not available: rank {torch_dist.get_rank()} of '
        f'{torch_dist.get_world_size()} runs on the CPU over gloo.',
        logger='current')


def amp_dtype() -> str:
    """The autocast dtype ``--amp`` uses on this machine.

    Returns:
        str: ``'bfloat16'`` on GPUs that support it, else ``'float16'``.

    Raises:
        RuntimeError: When no GPU is present; mixed precision on the CPU is
            not what ``--amp`` is for and mmengine refuses it.
    """
    if not torch.cuda.is_available():
        raise RuntimeError('--amp needs a CUDA GPU; this machine has none. '
                           'Run without --amp.')
    return 'bfloat16' if torch.cuda.is_bf16_supported() else 'float16'


def enable_amp(cfg: Config) -> None:
    """Switch the optimizer wrapper to mixed precision (``--amp``).

    bf16 has the range of fp32, so it runs without loss scaling; fp16 gets
    dynamic loss scaling.

    Args:
        cfg (Config): The config, modified in place.
    """
    dtype = amp_dtype()
    cfg.optim_wrapper.type = 'AmpOptimWrapper'
    cfg.optim_wrapper.dtype = dtype
    if dtype == 'bfloat16':
        cfg.optim_wrapper.loss_scale = dict(enabled=False)
    else:
        cfg.optim_wrapper.setdefault('loss_scale', 'dynamic')
    print_log(f'Mixed precision: {dtype} autocast.', logger='current')


def set_dataloader_defaults(cfg: Config,
                            pin_memory: bool = True,
                            persistent_workers: bool = True) -> None:
    """Fill in the data-loader options users rarely set by hand.

    ``pin_memory`` only helps a GPU; ``persistent_workers`` raises with
    ``num_workers=0``, so each is set only where it can work.

    Args:
        cfg (Config): The config, modified in place.
        pin_memory (bool): Allow pinned host memory (used by default when
            CUDA is available); False turns it off even where the config
            sets it. Defaults to True.
        persistent_workers (bool): Allow keeping worker processes between
            epochs (the default when there are workers); False turns it off
            even where the config sets it. Defaults to True.
    """
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if loader is None:
            continue
        merged = ConfigDict(collate_fn=dict(type='default_collate'))
        merged.update(deepcopy(loader))
        # A config's own value stands unless the command line turns the
        # option off (`--no-pin-memory`, `--no-persistent-workers`).
        merged.setdefault('pin_memory', torch.cuda.is_available())
        if not pin_memory:
            merged['pin_memory'] = False
        merged.setdefault('persistent_workers', True)
        if not persistent_workers or merged.get('num_workers', 0) == 0:
            merged['persistent_workers'] = False
        cfg[field] = merged
