# Copyright (c) mmtfclip contributors. All rights reserved.
import copy
import ctypes
import functools
import hashlib
import json
import os
import os.path as osp
import signal
import sys
import time
from typing import Dict, Optional, Sequence

import torch
from mmengine.dataset import DefaultSampler, pseudo_collate
from mmengine.dist import (broadcast, broadcast_object_list, get_dist_info,
                           is_main_process)
from mmengine.dist.utils import get_comm_device
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.utils.data import DataLoader

from mmtfclip.fileio import (UnsafeFileError, content_digest, load_file,
                             save_file)
from mmtfclip.registry import DATASETS, HOOKS

#: Bumped when what the memory is made of changes, so old caches are rebuilt.
MEMORY_VERSION = 2
_PR_SET_PDEATHSIG = 1


def _sha256_json(obj) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def end_with_parent(worker_id: int, parent_pid: int) -> None:
    """``worker_init_fn`` that ties a data-loader worker to its parent.

    The kernel sends the worker SIGKILL when the process that started it
    dies (``PR_SET_PDEATHSIG``, Linux), so a killed run leaves no worker
    decoding frames behind; torch's own check notices a dead parent only
    between batches. Elsewhere this does nothing.

    Args:
        worker_id (int): The worker's index (unused).
        parent_pid (int): The pid of the process that made the loader.
    """
    if not sys.platform.startswith('linux'):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    # The parent may have died before the call above.
    if os.getppid() != parent_pid:
        os._exit(1)


@HOOKS.register_module()
class CLIPMemoryHook(Hook):
    """Build TF-CLIP's CLIP-Memory before the first training step.

    The model computes the memory (:meth:`TFCLIP.prepare_memory`: the
    encoder as it is before any update embeds every training tracklet in
    dense clips, per-identity means); this hook says when, and keeps the
    cache and the resume rule:

    - a new run builds the memory from the training set (its pipeline
      replaced by ``pipeline``, typically the dense test pipeline) unless
      the model already holds one (``load_from`` a checkpoint that has one;
      ``force_rebuild`` builds it anyway);
    - the memory is cached in the work dir, written atomically with a
      content digest, under a key made of everything it depends on (the
      tracklets with their frame files' sizes and times, the pipeline, the
      encoder's config and weights, the data preprocessor, the number of
      identities, the precision); a cache that is truncated, damaged or
      made for other inputs is reported and rebuilt;
    - a resumed run (iteration > 0) keeps the memory restored with its
      checkpoint (or, failing that, the cached one) and never rebuilds it
      with the updated weights.

    The data loader's workers are not persistent and end with their
    parent (:func:`end_with_parent`). The build time goes to the text log
    and, as the scalar ``train/clip_memory_build_time_s``, to the
    visualisation backends.

    Args:
        pipeline (Sequence[dict]): Transforms giving dense clips
            ``[N, T, 3, H, W]`` (or a single clip ``[T, 3, H, W]``).
        dataset (dict, optional): The training set config; its pipeline is
            replaced by ``pipeline``. Defaults to None, i.e.
            ``train_dataloader.dataset`` of the runner's config.
        clips_per_batch (int): Clips per encoder forward. Defaults to 64.
        tracklets_per_load (int): Tracklets per data-loader batch.
            Defaults to 8.
        num_workers (int): Data-loader workers. Defaults to 4.
        autocast (bool): Use float16 autocast on GPU. Defaults to True.
        cache_file (str, optional): Cache file name in the work dir; None
            disables the cache. Defaults to 'clip_memory.pth'.
        force_rebuild (bool): Build the memory in a new run even when the
            model already holds one. Defaults to False.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 pipeline: Sequence[Dict],
                 dataset: Optional[Dict] = None,
                 clips_per_batch: int = 64,
                 tracklets_per_load: int = 8,
                 num_workers: int = 4,
                 autocast: bool = True,
                 cache_file: Optional[str] = 'clip_memory.pth',
                 force_rebuild: bool = False) -> None:
        if clips_per_batch < 1 or tracklets_per_load < 1:
            raise ValueError('clips_per_batch and tracklets_per_load must be '
                             '>= 1.')
        if num_workers < 0:
            raise ValueError(f'num_workers must be >= 0, got {num_workers}.')
        self.pipeline = [copy.deepcopy(t) for t in pipeline]
        self.dataset_cfg = copy.deepcopy(dataset)
        self.clips_per_batch = clips_per_batch
        self.tracklets_per_load = tracklets_per_load
        self.num_workers = num_workers
        self.autocast = autocast
        self.cache_file = cache_file
        self.force_rebuild = force_rebuild

    def before_train(self, runner) -> None:
        """Fill ``model.head.clip_memory``."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        head = model.head
        if not getattr(head, 'with_memory', False):
            raise RuntimeError(
                'CLIPMemoryHook is configured but the model head has no '
                'CLIP-Memory (model.head.loss_i2t=None); remove the hook.')
        cache_path = (
            osp.join(runner.work_dir, self.cache_file)
            if self.cache_file else None)

        if runner.iter > 0:
            self._restore_on_resume(runner, head, cache_path)
            return
        if not self.force_rebuild and bool(head.clip_memory.any()):
            runner.logger.info(
                'CLIP-Memory: kept the memory the model was loaded with '
                '(set force_rebuild=True to build it again).')
            return

        dataset = self.build_dataset(runner)
        num_pids = dataset.metainfo.get('num_pids')
        if num_pids is not None and num_pids != head.num_classes:
            raise ValueError(f'The training set has {num_pids} identities but '
                             f'model.head.num_classes={head.num_classes}.')
        key = None
        memory = None
        if cache_path is not None:
            if is_main_process():
                key = self.cache_key(runner, model, dataset)
                memory = self._read_cache(runner, cache_path, head, key)
            memory = self._share_from_main(memory, head.clip_memory)
        if memory is not None:
            runner.logger.info(
                f'CLIP-Memory: reused the cached memory in {cache_path}.')
            head.set_memory(memory.to(head.clip_memory.device))
            return
        start = time.perf_counter()
        memory = model.prepare_memory(
            self.build_dataloader(dataset),
            autocast=self.autocast,
            max_clips=self.clips_per_batch)
        elapsed = time.perf_counter() - start
        runner.logger.info(
            f'CLIP-Memory: embedded {len(dataset)} training tracklets of '
            f'{head.num_classes} identities in {elapsed:.1f} s.')
        runner.message_hub.update_info('clip_memory_build_time', elapsed)
        # The visualisation backends too, next to the epoch times.
        runner.visualizer.add_scalars(
            {'train/clip_memory_build_time_s': elapsed}, step=runner.iter)
        if cache_path is not None and is_main_process():
            save_file(dict(memory=memory.cpu(), key=key), cache_path)

    # ------------------------------------------------------------------
    # The data.
    # ------------------------------------------------------------------
    def build_dataset(self, runner):
        """The training set with ``pipeline``."""
        cfg = self.dataset_cfg
        if cfg is None:
            cfg = runner.cfg.get('train_dataloader', {}).get('dataset')
        if cfg is None:
            raise KeyError('CLIPMemoryHook needs the training set: give it '
                           '`dataset=` or set train_dataloader.dataset.')
        cfg = copy.deepcopy(cfg)
        if 'pipeline' not in cfg:
            raise KeyError(
                f"The training set config (type={cfg.get('type')}) has no "
                'pipeline to replace (a dataset wrapper?); give '
                'CLIPMemoryHook the plain dataset as `dataset=`.')
        cfg['pipeline'] = copy.deepcopy(self.pipeline)
        dataset = DATASETS.build(cfg)
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        return dataset

    def build_dataloader(self, dataset) -> DataLoader:
        """Each rank's share of ``dataset``, every tracklet once."""
        return DataLoader(
            dataset,
            batch_size=self.tracklets_per_load,
            sampler=DefaultSampler(dataset, shuffle=False, round_up=False),
            num_workers=self.num_workers,
            collate_fn=pseudo_collate,
            persistent_workers=False,
            worker_init_fn=functools.partial(
                end_with_parent, parent_pid=os.getpid())
            if self.num_workers else None)

    # ------------------------------------------------------------------
    # Cache and resume.
    # ------------------------------------------------------------------
    def cache_key(self, runner, model, dataset) -> Dict[str, str]:
        """What the memory depends on, each part as a digest.

        Args:
            runner: The runner (its config gives the backbone's).
            model (TFCLIP): The unwrapped model.
            dataset: The training set with ``pipeline``.

        Returns:
            dict: ``{part: hex digest}``.
        """
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        tracklets = [[info['pid'], info['camid'], info['frame_paths']]
                     for info in infos]
        frames = hashlib.sha256()
        for info in infos:
            for path in info['frame_paths']:
                try:
                    stat = os.stat(path)
                    frames.update(
                        f'{stat.st_size}:{stat.st_mtime_ns};'.encode())
                except OSError:  # not a local file: its name must do
                    frames.update(b'?;')
        preprocessor = model.data_preprocessor
        backbone_cfg = (runner.cfg.get('model') or {}).get('backbone')
        device = preprocessor.device.type
        return dict(
            version=str(MEMORY_VERSION),
            tracklets=_sha256_json(tracklets),
            frames=frames.hexdigest(),
            pipeline=_sha256_json(self.pipeline),
            backbone=_sha256_json(
                [type(model.backbone).__name__, backbone_cfg]),
            encoder=content_digest(model.backbone.state_dict()),
            preprocessor=content_digest([
                preprocessor.mean, preprocessor.std,
                str(getattr(preprocessor, 'dtype', None))
            ]),
            identities=str(model.head.num_classes),
            precision='float16 autocast' if
            (self.autocast and device == 'cuda') else 'float32')

    @staticmethod
    def _check_memory(memory, head, path: str) -> None:
        if not isinstance(memory, torch.Tensor):
            raise UnsafeFileError(f'{path} holds no memory tensor.')
        if memory.shape != head.clip_memory.shape:
            raise UnsafeFileError(
                f'{path} holds a memory of shape {tuple(memory.shape)}, the '
                f'model needs {tuple(head.clip_memory.shape)}.')
        if not torch.isfinite(memory).all():
            bad = int((~torch.isfinite(memory)).any(dim=1).sum())
            raise UnsafeFileError(
                f'{path} holds a memory with non-finite values in {bad} '
                'rows.')

    def _read_cache(self, runner, path: str, head,
                    key: Dict[str, str]) -> Optional[torch.Tensor]:
        """The cached memory if it is sound and made for ``key``."""
        if not osp.isfile(path):
            return None
        try:
            cached = load_file(path, what='CLIP-Memory cache')
            if not isinstance(cached, dict):
                raise UnsafeFileError(f'{path} holds no dict.')
            self._check_memory(cached.get('memory'), head, path)
        except UnsafeFileError as e:
            runner.logger.warning(f'CLIP-Memory: {e} Rebuilding it.')
            return None
        old = cached.get('key')
        if old != key:
            old = old if isinstance(old, dict) else {}
            changed = sorted(k for k in key if old.get(k) != key[k])
            runner.logger.warning(
                f'CLIP-Memory: the cache {path} was made for other '
                f'{", ".join(changed)}; rebuilding it.')
            return None
        return cached['memory']

    def _restore_on_resume(self, runner, head,
                           cache_path: Optional[str]) -> None:
        if bool(head.clip_memory.any()):
            runner.logger.info('CLIP-Memory: kept the memory restored from '
                               'the checkpoint.')
            return
        memory = None
        problem = ''
        if cache_path is not None and is_main_process() and osp.isfile(
                cache_path):
            # The encoder has been updated: the key cannot be checked, but
            # the file must be sound and fit the model.
            try:
                cached = load_file(cache_path, what='CLIP-Memory cache')
                memory = cached.get('memory') if isinstance(cached,
                                                            dict) else None
                self._check_memory(memory, head, cache_path)
            except UnsafeFileError as e:
                memory, problem = None, f' ({e})'
        memory = self._share_from_main(memory, head.clip_memory)
        if memory is None:
            raise RuntimeError(
                f'Resuming at iteration {runner.iter} without a CLIP-Memory '
                f'in the checkpoint or a usable work dir cache{problem}; it '
                'cannot be rebuilt from the already updated encoder. Resume '
                'from a checkpoint saved by this codebase, or start a new '
                'run.')
        runner.logger.info(
            f'CLIP-Memory: restored the cached memory from {cache_path}.')
        head.set_memory(memory.to(head.clip_memory.device))

    @staticmethod
    def _share_from_main(memory: Optional[torch.Tensor],
                         like: torch.Tensor) -> Optional[torch.Tensor]:
        """Give every rank the main process's memory (or None)."""
        _, world_size = get_dist_info()
        if world_size == 1:
            return memory
        found = [memory is not None]
        broadcast_object_list(found)
        if not found[0]:
            return None
        device = get_comm_device()
        shared = (
            memory.to(device) if memory is not None else torch.empty_like(
                like, device=device))
        broadcast(shared)
        return shared
