# Copyright (c) mmtfclip contributors. All rights reserved.
import copy
import hashlib
import json
import os.path as osp
import time
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence

import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import (all_gather, broadcast, broadcast_object_list,
                           get_dist_info, is_main_process)
from mmengine.dist.utils import get_comm_device
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmengine.utils import ProgressBar
from torch.utils.data import DataLoader, Subset

from mmtfclip.compat import load_weights
from mmtfclip.registry import DATASETS, HOOKS


def _sha256_json(obj) -> str:
    text = json.dumps(obj, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


@HOOKS.register_module()
class CLIPMemoryHook(Hook):
    """Build TF-CLIP's CLIP-Memory before the first training step.

    The model's encoder as it is before any update (the pretrained CLIP
    weights) embeds every training tracklet, as the authors define it: the
    tracklet is cut into dense clips of T frames (the ``pipeline`` given
    here, typically the dense test pipeline), each clip's feature is its
    projected class token averaged over frames, without the camera
    embedding, and the tracklet's feature is the mean over its clips. An
    identity's memory entry is the mean over its tracklets. The result
    goes into ``model.head.clip_memory``.

    Clips of several tracklets are batched together (``clips_per_batch``),
    the tracklets are sharded over the ranks and the features all-gathered,
    so every rank gets the same memory; on GPU the encoder runs under
    autocast (float16, as the authors). Rank 0 shows a progress bar. The
    build time goes to the text log and, as the scalar
    ``train/clip_memory_build_time_s``, to the visualisation backends.

    The memory is cached in the work dir with a key made of the training
    tracklets, the pipeline and a hash of the encoder weights, and reused
    when the key matches. A resumed run (iteration > 0) keeps the memory
    restored with its checkpoint (or, failing that, the cached one) and
    never rebuilds it with the updated weights. A new run whose model
    already holds a memory (``load_from`` a checkpoint that has one) keeps
    it unless ``force_rebuild``.

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
        self.pipeline = [copy.deepcopy(t) for t in pipeline]
        self.dataset_cfg = copy.deepcopy(dataset)
        self.clips_per_batch = clips_per_batch
        self.tracklets_per_load = tracklets_per_load
        self.num_workers = num_workers
        self.autocast = autocast
        self.cache_file = cache_file
        self.force_rebuild = force_rebuild

    # ------------------------------------------------------------------
    # Hook entry point.
    # ------------------------------------------------------------------
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

        dataset = self._build_dataset(runner)
        num_pids = dataset.metainfo.get('num_pids')
        if num_pids is not None and num_pids != head.num_classes:
            raise ValueError(f'The training set has {num_pids} identities but '
                             f'model.head.num_classes={head.num_classes}.')
        key = None
        memory = None
        if cache_path is not None:
            if is_main_process():
                key = self._cache_key(model, dataset)
                memory = self._read_cache(cache_path, key)
            memory = self._share_from_main(memory, head.clip_memory)
        if memory is not None:
            runner.logger.info(
                f'CLIP-Memory: reused the cached memory in {cache_path}.')
        else:
            start = time.perf_counter()
            memory = self.build_memory(model, dataset)
            elapsed = time.perf_counter() - start
            runner.logger.info(
                f'CLIP-Memory: embedded {len(dataset)} training tracklets of '
                f'{head.num_classes} identities in {elapsed:.1f} s.')
            runner.message_hub.update_info('clip_memory_build_time', elapsed)
            # The visualisation backends too, next to the epoch times.
            runner.visualizer.add_scalars(
                {'train/clip_memory_build_time_s': elapsed}, step=runner.iter)
            if cache_path is not None and is_main_process():
                torch.save(dict(memory=memory.cpu(), key=key), cache_path)
        head.set_memory(memory.to(head.clip_memory.device))

    # ------------------------------------------------------------------
    # Resume and cache.
    # ------------------------------------------------------------------
    def _restore_on_resume(self, runner, head,
                           cache_path: Optional[str]) -> None:
        if bool(head.clip_memory.any()):
            runner.logger.info('CLIP-Memory: kept the memory restored from '
                               'the checkpoint.')
            return
        memory = None
        if cache_path is not None and is_main_process() and osp.isfile(
                cache_path):
            memory = load_weights(cache_path)['memory']
        memory = self._share_from_main(memory, head.clip_memory)
        if memory is None:
            raise RuntimeError(
                f'Resuming at iteration {runner.iter} without a CLIP-Memory '
                'in the checkpoint or the work dir cache; it cannot be '
                'rebuilt from the already updated encoder. Resume from a '
                'checkpoint saved by this codebase, or start a new run.')
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

    def _cache_key(self, model, dataset) -> Dict[str, str]:
        infos = [dataset.get_data_info(i) for i in range(len(dataset))]
        tracklets = [[info['pid'], info['camid'], info['frame_paths']]
                     for info in infos]
        weights = hashlib.sha256()
        modules = [model.backbone]
        if getattr(model, 'visual_proj', None) is not None:
            modules.append(model.visual_proj)
        for module in modules:
            for name, tensor in module.state_dict().items():
                weights.update(name.encode())
                weights.update(tensor.detach().cpu().contiguous().view(
                    torch.uint8).numpy().tobytes())
        return dict(
            tracklets=_sha256_json(tracklets),
            pipeline=_sha256_json(self.pipeline),
            encoder=weights.hexdigest())

    @staticmethod
    def _read_cache(path: str, key: Dict[str, str]) -> Optional[torch.Tensor]:
        if not osp.isfile(path):
            return None
        cached = load_weights(path)
        if cached.get('key') != key:
            return None
        return cached['memory']

    # ------------------------------------------------------------------
    # Building.
    # ------------------------------------------------------------------
    def _build_dataset(self, runner):
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

    def build_memory(self, model, dataset) -> torch.Tensor:
        """Embed the training set and average per identity.

        Args:
            model (TFCLIP): The (unwrapped) model.
            dataset (Dataset): Training tracklets packed by ``pipeline``.

        Returns:
            Tensor: ``[num_classes, D]`` float32 on the CPU, the same on
            every rank.
        """
        rank, world_size = get_dist_info()
        indices = list(range(rank, len(dataset), world_size))
        was_training = model.training
        model.eval()
        try:
            feats, labels = self._embed_tracklets(model, dataset, indices,
                                                  rank == 0)
        finally:
            model.train(was_training)
        if world_size > 1:
            feats, labels = self._gather(feats, labels, len(dataset))
        return self._identity_means(feats, labels, model.head.num_classes)

    def _embed_tracklets(self, model, dataset, indices: List[int],
                         show_progress: bool):
        """Features ``[n, D]`` and labels ``[n]`` of the given tracklets."""
        loader = DataLoader(
            Subset(dataset, indices),
            batch_size=self.tracklets_per_load,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=pseudo_collate)
        device = model.data_preprocessor.device
        autocast = (
            torch.autocast(device_type='cuda', dtype=torch.float16)
            if self.autocast and device.type == 'cuda' else nullcontext())
        dims = model.head.proj_channels
        sums = torch.zeros(len(indices), dims, dtype=torch.float64)
        counts = torch.zeros(len(indices), dtype=torch.float64)
        labels = torch.full((len(indices), ), -1, dtype=torch.long)
        pending: List[torch.Tensor] = []
        owners: List[int] = []

        def flush(count: int) -> None:
            clips, owner = pending[:count], owners[:count]
            del pending[:count], owners[:count]
            inputs = model.data_preprocessor(dict(inputs=clips),
                                             False)['inputs']
            with torch.no_grad(), autocast:
                feats = model.extract_clip_feat(inputs)
            owner = torch.tensor(owner)
            sums.index_add_(0, owner, feats.double().cpu())
            counts.index_add_(0, owner,
                              torch.ones(len(owner), dtype=torch.float64))

        bar = ProgressBar(len(indices)) if show_progress else None
        position = 0
        for batch in loader:
            for inputs, sample in zip(batch['inputs'], batch['data_samples']):
                clips = inputs if inputs.dim() == 5 else inputs.unsqueeze(0)
                pending.extend(clips.unbind(0))
                owners.extend([position] * len(clips))
                labels[position] = int(sample.gt_label.reshape(-1)[0])
                position += 1
            while len(pending) >= self.clips_per_batch:
                flush(self.clips_per_batch)
            if bar is not None:
                bar.update(len(batch['inputs']))
        if pending:
            flush(len(pending))
        return (sums / counts.unsqueeze(1)).float(), labels

    @staticmethod
    def _gather(feats: torch.Tensor, labels: torch.Tensor, total: int):
        """All-gather the ranks' shards back into tracklet order."""
        rank, world_size = get_dist_info()
        per_rank = -(-total // world_size)
        device = get_comm_device()
        padded = torch.zeros(per_rank, feats.shape[1], device=device)
        padded[:len(feats)] = feats.to(device)
        padded_labels = torch.full((per_rank, ),
                                   -1,
                                   device=device,
                                   dtype=torch.long)
        padded_labels[:len(labels)] = labels.to(device)
        all_feats = all_gather(padded)
        all_labels = all_gather(padded_labels)
        out_feats = torch.empty(total, feats.shape[1])
        out_labels = torch.empty(total, dtype=torch.long)
        for r in range(world_size):
            count = len(range(r, total, world_size))
            out_feats[r::world_size] = all_feats[r][:count].cpu()
            out_labels[r::world_size] = all_labels[r][:count].cpu()
        return out_feats, out_labels

    @staticmethod
    def _identity_means(feats: torch.Tensor, labels: torch.Tensor,
                        num_classes: int) -> torch.Tensor:
        if labels.min() < 0 or labels.max() >= num_classes:
            raise ValueError(
                f'Training labels must lie in [0, {num_classes}), got '
                f'{int(labels.min())}..{int(labels.max())}.')
        counts = torch.bincount(labels, minlength=num_classes)
        missing = torch.nonzero(counts == 0).flatten().tolist()
        if missing:
            raise ValueError(
                f'{len(missing)} of the {num_classes} identities have no '
                f'training tracklet, so no CLIP-Memory entry: {missing[:20]}'
                f"{' ...' if len(missing) > 20 else ''}. Check "
                'model.head.num_classes against the training set.')
        sums = torch.zeros(num_classes, feats.shape[1], dtype=torch.float64)
        sums.index_add_(0, labels, feats.double())
        return (sums / counts.unsqueeze(1).double()).float()
