# Copyright (c) mmtfclip contributors. All rights reserved.
"""How :class:`mmtfclip.engine.runner.ReIDRunner` prepares a config.

:func:`prepare_run_config` is the one place where a config becomes a run:
the runner calls it, so ``tools/train.py``, ``tools/test.py``,
``tools/train_splits.py``, the demo and ``RUNNERS.build(cfg)`` in a notebook
all run the same thing. What it does that mmengine does not:

* CPU-only distributed runs. mmengine 0.10.7's ``init_dist`` calls
  ``torch.cuda.set_device`` and its DDP wrapper passes ``device_ids``; both
  fail without CUDA. When CUDA is absent we initialise a gloo process group
  from the ``torchrun`` environment first (mmengine then keeps it) and wrap
  the model with ``device_ids=None``. The same ``dist_train.sh`` thus runs
  CPU processes on a laptop or in CI.
* ``--amp`` picks bf16 where the GPU supports it (no loss scaling needed) and
  fp16 with dynamic loss scaling otherwise.
* A training batch given for all ranks together
  (``IdentityBalancedSampler(split_global_batch=True)``): the per-rank batch
  of the data loader follows from the number of processes
  (:func:`fit_global_batch`).
* Data-loader defaults that only work in some settings
  (:func:`set_dataloader_defaults`) and the checks of
  :func:`mmtfclip.utils.config_check.check_train_config`.
* CPU threads: without CUDA, the main process takes the cores the
  data-loader workers leave (:func:`set_cpu_threads`).
"""
import logging
import os
import random
from copy import deepcopy

import numpy as np
import torch
import torch.distributed as torch_dist
from mmengine.config import Config, ConfigDict
from mmengine.logging import print_log
from mmengine.registry import FUNCTIONS
from torch.utils.data import get_worker_info

from mmtfclip.utils.config_check import check_train_config


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
    if cfg.get('sync_bn') is not None:
        # torch's SyncBatchNorm refuses CPU tensors.
        print_log(
            f'sync_bn={cfg.sync_bn!r} is ignored on the CPU: each process '
            'normalises with its own batch statistics.',
            logger='current',
            level=logging.WARNING)
        cfg.sync_bn = None
    wrapper = cfg.get('model_wrapper_cfg') or ConfigDict(
        type='MMDistributedDataParallel',
        find_unused_parameters=cfg.get('find_unused_parameters', False))
    wrapper['device_ids'] = None
    cfg.model_wrapper_cfg = wrapper
    print_log(
        f'CUDA is not available: rank {torch_dist.get_rank()} of '
        f'{torch_dist.get_world_size()} runs on the CPU over gloo.',
        logger='current')


def launcher_world_size(launcher: str) -> int:
    """The number of processes the launcher started, read before any
    process group exists.

    Args:
        launcher (str): ``'none'``, ``'pytorch'``, ``'slurm'`` or ``'mpi'``.

    Returns:
        int: 1 for ``'none'``, else the launcher's world size.
    """
    if launcher == 'none':
        return 1
    key = dict(
        pytorch='WORLD_SIZE', slurm='SLURM_NTASKS',
        mpi='OMPI_COMM_WORLD_SIZE')[launcher]
    if key not in os.environ:
        raise RuntimeError(
            f'--launcher {launcher} needs the environment variable {key}; '
            'start the script with tools/dist_train.sh or '
            'tools/slurm_train.sh.')
    return int(os.environ[key])


def fit_global_batch(cfg: Config, world_size: int) -> None:
    """Give each rank its share of a global training batch.

    With ``train_dataloader.sampler.split_global_batch=True`` the sampler's
    ``batch_size`` is the batch of all ranks together; each rank's data
    loader then takes ``batch_size // world_size`` samples. Configs without
    that option are left alone (their ``batch_size`` is per rank).

    Args:
        cfg (Config): The config, modified in place.
        world_size (int): The number of training processes.

    Raises:
        ValueError: When the global batch cannot be split evenly, naming
            the config key.
    """
    loader = cfg.get('train_dataloader') or {}
    sampler = loader.get('sampler') or {}
    if not sampler.get('split_global_batch', False):
        return
    if 'batch_size' not in sampler:
        raise ValueError(
            'train_dataloader.sampler.split_global_batch=True needs the '
            'global batch as train_dataloader.sampler.batch_size.')
    total = sampler['batch_size']
    if total % world_size:
        raise ValueError(
            f'train_dataloader.sampler.batch_size = {total} (the global '
            f'batch) cannot be split evenly across {world_size} processes.')
    per_rank = total // world_size
    if loader.get('batch_size') != per_rank:
        print_log(
            f'train_dataloader.batch_size set to {per_rank}: the global '
            f'batch of {total} split across {world_size} processes.',
            logger='current')
    loader['batch_size'] = per_rank


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


@FUNCTIONS.register_module()
def epoch_worker_init_fn(worker_id: int) -> None:
    """Seed a training data-loader worker from its epoch's seed and rank.

    PyTorch gives the workers of each epoch a base seed drawn from the main
    process (the same on every rank), which
    :class:`mmtfclip.engine.hooks.EpochSeedHook` makes a function of the
    seed and the epoch; mixing in the rank gives each process its own
    augmentations. mmengine's default instead seeds a worker from (seed,
    rank, worker) alone, so workers started at each epoch would repeat the
    same random numbers every epoch.

    Args:
        worker_id (int): The worker's index (its seed already includes it).
    """
    rank = int(os.environ.get('RANK', 0))
    seed = int(
        np.random.SeedSequence([get_worker_info().seed,
                                rank]).generate_state(1)[0])
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


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
            epochs (the default of the evaluation loaders when there are
            workers); False turns it off even where the config sets it.
            Defaults to True.

    The training loader's workers are not kept by default and are seeded
    by :func:`epoch_worker_init_fn`: workers started at each epoch from the
    epoch's seed draw the same augmentations whether the run went through or
    was resumed from a checkpoint, while kept workers would carry their
    random state over from the epochs before the resume.
    """
    for field in ('train_dataloader', 'val_dataloader', 'test_dataloader'):
        loader = cfg.get(field)
        if loader is None:
            continue
        # Training clips all have one shape and are stacked in the workers;
        # dense test tracklets have different numbers of clips, which only
        # the data preprocessor can batch.
        collate = ('default_collate'
                   if field == 'train_dataloader' else 'pseudo_collate')
        merged = ConfigDict(collate_fn=dict(type=collate))
        merged.update(deepcopy(loader))
        if merged.get('persistent_workers') and not merged.get(
                'num_workers', 0):
            print_log(
                f'{field}.persistent_workers=True needs worker processes '
                f'but {field}.num_workers is 0; set to False.',
                logger='current',
                level=logging.WARNING)
        # A config's own value stands unless the command line turns the
        # option off (`--no-pin-memory`, `--no-persistent-workers`).
        merged.setdefault('pin_memory', torch.cuda.is_available())
        if not pin_memory:
            merged['pin_memory'] = False
        merged.setdefault('persistent_workers', field != 'train_dataloader')
        if field == 'train_dataloader':
            merged.setdefault('worker_init_fn',
                              dict(type='epoch_worker_init_fn'))
        if not persistent_workers or merged.get('num_workers', 0) == 0:
            merged['persistent_workers'] = False
        cfg[field] = merged


def set_cpu_threads(cfg: Config) -> None:
    """Share the CPU cores between the main process and the loader workers.

    torch's default (one intra-op thread per core in the main process)
    competes with the data-loader workers for the same cores; on a small
    machine that oversubscription costs more than the threads gain (see
    docs/benchmarks.md). Without CUDA, the main process therefore gets the
    cores left after one per training worker (at least one), divided among
    the processes of this machine. ``env_cfg.cpu_threads`` sets the number
    instead (None: torch's default); ``OMP_NUM_THREADS`` in the environment
    wins over both. Each
    data-loader worker runs with one thread (torch's worker default, and
    OpenCV's threads are off through ``env_cfg.mp_cfg``).

    Args:
        cfg (Config): The config (read only).
    """
    if torch.cuda.is_available() or 'OMP_NUM_THREADS' in os.environ:
        return
    threads = (cfg.get('env_cfg') or {}).get('cpu_threads', 'auto')
    if threads is None:
        return
    if threads == 'auto':
        cores = (len(os.sched_getaffinity(0)) if hasattr(
            os, 'sched_getaffinity') else os.cpu_count()) or 1
        procs = int(os.environ.get('LOCAL_WORLD_SIZE', 1))
        workers = (cfg.get('train_dataloader') or {}).get('num_workers', 0)
        threads = max(1, cores // procs - workers)
    torch.set_num_threads(int(threads))
    print_log(
        f'CPU run: {int(threads)} thread(s) for the main process '
        '(env_cfg.cpu_threads or OMP_NUM_THREADS to choose).',
        logger='current')


def prepare_run_config(cfg: Config) -> None:
    """Turn a config into the run it describes (called by the runner).

    Fills in the data-loader defaults, splits a global training batch
    across the processes of ``cfg.launcher``, checks a training config
    (every problem named by its key), sets up CPU-only distributed runs and
    the CPU threads. Applying it twice changes nothing, so the config the
    runner dumps into ``work_dir`` runs the same way again.

    Args:
        cfg (Config): The config, modified in place.

    Raises:
        ValueError: If the config cannot work, naming each key.
    """
    launcher = cfg.get('launcher', 'none')
    world_size = launcher_world_size(launcher)
    set_dataloader_defaults(cfg)
    fit_global_batch(cfg, world_size)
    if cfg.get('train_dataloader') is not None and cfg.get(
            'train_cfg') is not None:
        # What needs the parsed training set is checked by ConfigCheckHook.
        check_train_config(cfg, world_size)
    setup_distributed(cfg, launcher)
    set_cpu_threads(cfg)
