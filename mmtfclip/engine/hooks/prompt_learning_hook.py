# Copyright (c) mmtfclip contributors. All rights reserved.
import copy
import math
import os.path as osp
import time
from contextlib import nullcontext
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from mmengine.dataset import pseudo_collate
from mmengine.dist import (all_gather_object, broadcast, get_dist_info,
                           is_main_process)
from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from torch.utils.data import DataLoader, Subset

from mmtfclip.fileio import load_file, save_file
from mmtfclip.registry import DATASETS, HOOKS, OPTIMIZERS


def cosine_warmup_lr(epoch: int, base_lr: float, max_epochs: int,
                     lr_min: float, warmup_lr_init: float,
                     warmup_epochs: int) -> float:
    """CLIP-ReID's stage-1 learning rate of a 1-based epoch.

    timm's ``CosineLRScheduler`` as the authors configure it (one cycle,
    ``warmup_prefix=False``, stepped with the epoch number at the start of
    each epoch): linear from ``warmup_lr_init`` over the first
    ``warmup_epochs``, then the cosine of the whole schedule from
    ``base_lr`` to ``lr_min``, which the last epoch takes.

    Args:
        epoch (int): 1-based epoch.
        base_lr (float): The optimizer's lr.
        max_epochs (int): Length of the cosine cycle.
        lr_min (float): The end of the cosine.
        warmup_lr_init (float): The lr at epoch 0 of the warm-up.
        warmup_epochs (int): Warm-up length.

    Returns:
        float: The lr.
    """
    if epoch < warmup_epochs:
        return warmup_lr_init + epoch * (base_lr -
                                         warmup_lr_init) / warmup_epochs
    if epoch >= max_epochs:
        return lr_min
    return lr_min + 0.5 * (base_lr - lr_min) * (
        1 + math.cos(math.pi * epoch / max_epochs))


@HOOKS.register_module()
class PromptLearningHook(Hook):
    """CLIP-ReID's stage 1, before the training loop (stage 2) starts.

    The schedule only; the computation is the model's
    (:class:`~mmtfclip.models.CLIPReID`):

    1. every training sample goes once through the frozen image encoder
       (``model.extract_clip_feat``, the ``pipeline`` given here: the
       authors use the test transforms; a sample with several clips is
       their mean); the samples are sharded over the ranks and the
       features all-gathered;
    2. for ``max_epochs`` epochs, the features are visited in a random
       order (seeded by the run's seed and the epoch) in batches of
       ``batch_size``, and only the prompt tokens are updated with
       ``model.prompt_loss`` (``optimizer``, by default Adam 3.5e-4, weight
       decay 1e-4, and :func:`cosine_warmup_lr` each epoch). Every rank
       runs the same steps on the same features; rank 0's tokens are
       broadcast at the end;
    3. ``model.build_text_memory()`` fixes every identity's text feature
       for stage 2.

    Resume: the stage-1 state (tokens, optimizer, epoch) is written to
    ``state_file`` in the work dir every ``save_interval`` epochs and at
    the end (atomically). A run started with ``resume=True`` before any
    stage-2 checkpoint continues stage 1 from that file; a run resumed in
    stage 2 (iteration > 0) gets the tokens and the text features from its
    checkpoint and skips stage 1. A new run whose model already holds text
    features (``load_from``) keeps them unless ``force``.

    Args:
        pipeline (Sequence[dict]): Transforms of the feature pass.
        max_epochs (int): Stage-1 epochs. Defaults to 120.
        batch_size (int): Samples per step. Defaults to 64.
        optimizer (dict): Optimizer config (without params). Defaults to
            Adam, lr 3.5e-4, weight decay 1e-4.
        lr_min (float): Defaults to 1e-6.
        warmup_lr_init (float): Defaults to 1e-5.
        warmup_epochs (int): Defaults to 5.
        dataset (dict, optional): The training set config; None takes
            ``train_dataloader.dataset``. Its pipeline is replaced.
            Defaults to None.
        samples_per_load (int): Data-loader batch of the feature pass.
            Defaults to 64.
        num_workers (int): Data-loader workers. Defaults to 4.
        autocast (bool): float16 autocast and a gradient scaler on GPU, as
            the authors. Defaults to True.
        state_file (str): Stage-1 state in the work dir. Defaults to
            'prompt_learning.pth'.
        save_interval (int): Epochs between state saves. Defaults to 10.
        log_interval (int): Epochs between log lines. Defaults to 1.
        force (bool): Run stage 1 even when the model holds text features.
            Defaults to False.
    """

    priority = 'VERY_HIGH'

    def __init__(self,
                 pipeline: Sequence[Dict],
                 max_epochs: int = 120,
                 batch_size: int = 64,
                 optimizer: Dict = dict(
                     type='Adam', lr=3.5e-4, weight_decay=1e-4),
                 lr_min: float = 1e-6,
                 warmup_lr_init: float = 1e-5,
                 warmup_epochs: int = 5,
                 dataset: Optional[Dict] = None,
                 samples_per_load: int = 64,
                 num_workers: int = 4,
                 autocast: bool = True,
                 state_file: str = 'prompt_learning.pth',
                 save_interval: int = 10,
                 log_interval: int = 1,
                 force: bool = False) -> None:
        if max_epochs < 1 or batch_size < 1 or save_interval < 1:
            raise ValueError('max_epochs, batch_size and save_interval must '
                             'be >= 1.')
        if 'lr' not in optimizer:
            raise KeyError('PromptLearningHook.optimizer needs an lr.')
        self.pipeline = [copy.deepcopy(t) for t in pipeline]
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.optimizer_cfg = copy.deepcopy(optimizer)
        self.lr_min = lr_min
        self.warmup_lr_init = warmup_lr_init
        self.warmup_epochs = warmup_epochs
        self.dataset_cfg = copy.deepcopy(dataset)
        self.samples_per_load = samples_per_load
        self.num_workers = num_workers
        self.autocast = autocast
        self.state_file = state_file
        self.save_interval = save_interval
        self.log_interval = log_interval
        self.force = force

    def resume_state(self, runner) -> Optional[str]:
        """The stage-1 progress file a resumed run continues from, if any
        (the runner accepts ``resume=True`` without a training checkpoint
        when a hook has one)."""
        path = osp.join(runner.work_dir, self.state_file)
        return path if osp.isfile(path) else None

    def before_train(self, runner) -> None:
        """Run stage 1 (or restore its result) and fix the text features."""
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        if not hasattr(model, 'prompt_loss'):
            raise TypeError('PromptLearningHook needs a CLIPReID model, got '
                            f'{type(model).__name__}.')
        head = model.head
        if runner.iter > 0:
            if not bool(head.clip_memory.any()):
                raise RuntimeError(
                    f'Resuming stage 2 at iteration {runner.iter}, but the '
                    'checkpoint holds no text features (head.clip_memory); '
                    'resume from a checkpoint saved by this codebase.')
            runner.logger.info('Stage 1: skipped, the prompts and text '
                               'features come with the resumed checkpoint.')
            return
        if not self.force and bool(head.clip_memory.any()):
            runner.logger.info(
                'Stage 1: skipped, kept the text features the model was '
                'loaded with (set force=True to learn the prompts again).')
            return

        state_path = osp.join(runner.work_dir, self.state_file)
        learner = model.prompt_learner
        learner.requires_grad_(True)
        try:
            optimizer = OPTIMIZERS.build(
                dict(self.optimizer_cfg, params=list(learner.parameters())))
            scaler = self._scaler(model)
            start = 1
            if getattr(runner, '_resume', False) and osp.isfile(state_path):
                start = self._restore(runner, state_path, learner, optimizer,
                                      scaler)
            if start <= self.max_epochs:
                feats, labels = self.extract_features(runner, model)
                self._learn(runner, model, optimizer, scaler, feats, labels,
                            start, state_path)
        finally:
            learner.requires_grad_(False)
        self._share_prompts(learner)
        with self._autocast(model):
            model.build_text_memory()
        runner.logger.info(
            f'Stage 1: text features of {head.num_classes} identities fixed '
            'for stage 2.')

    # ------------------------------------------------------------------
    def _autocast(self, model):
        device = model.data_preprocessor.device
        if self.autocast and device.type == 'cuda':
            return torch.autocast(device_type='cuda', dtype=torch.float16)
        return nullcontext()

    def _scaler(self, model) -> Optional[torch.amp.GradScaler]:
        device = model.data_preprocessor.device
        if self.autocast and device.type == 'cuda':
            return torch.amp.GradScaler('cuda')
        return None

    def _build_dataset(self, runner):
        cfg = self.dataset_cfg
        if cfg is None:
            cfg = runner.cfg.get('train_dataloader', {}).get('dataset')
        if cfg is None or 'pipeline' not in cfg:
            raise KeyError(
                'PromptLearningHook needs the plain training set config: give '
                'it `dataset=` or set train_dataloader.dataset (with a '
                'pipeline to replace).')
        cfg = copy.deepcopy(cfg)
        cfg['pipeline'] = copy.deepcopy(self.pipeline)
        dataset = DATASETS.build(cfg)
        if hasattr(dataset, 'full_init'):
            dataset.full_init()
        return dataset

    def extract_features(self, runner,
                         model) -> Tuple[torch.Tensor, torch.Tensor]:
        """Every training sample's stage-1 feature and label, in index
        order, the same on every rank."""
        dataset = self._build_dataset(runner)
        rank, world_size = get_dist_info()
        indices = list(range(rank, len(dataset), world_size))
        loader = DataLoader(
            Subset(dataset, indices),
            batch_size=self.samples_per_load,
            shuffle=False,
            num_workers=self.num_workers,
            collate_fn=pseudo_collate)
        start = time.perf_counter()
        feats: List[torch.Tensor] = []
        labels: List[int] = []
        was_training = model.training
        model.eval()
        try:
            for batch in loader:
                counts = [
                    x.shape[0] if x.dim() == 5 else 1 for x in batch['inputs']
                ]
                clips = [
                    c for x in batch['inputs']
                    for c in (x.unbind(0) if x.dim() == 5 else [x])
                ]
                inputs = model.data_preprocessor(dict(inputs=clips),
                                                 False)['inputs']
                with torch.no_grad(), self._autocast(model):
                    out = model.extract_clip_feat(inputs).float().cpu()
                feats.extend(f.mean(0) for f in out.split(counts))
                labels.extend(
                    int(s.gt_label.reshape(-1)[0])
                    for s in batch['data_samples'])
        finally:
            model.train(was_training)
        shards = [(indices, torch.stack(feats), labels)]
        if world_size > 1:
            shards = all_gather_object(shards[0])
        total = len(dataset)
        out_feats = torch.empty(total, shards[0][1].shape[1])
        out_labels = torch.empty(total, dtype=torch.long)
        for shard_indices, shard_feats, shard_labels in shards:
            out_feats[shard_indices] = shard_feats
            out_labels[shard_indices] = torch.tensor(shard_labels)
        runner.logger.info(
            f'Stage 1: image features of {total} training samples in '
            f'{time.perf_counter() - start:.1f} s.')
        return out_feats, out_labels

    def _learn(self, runner, model, optimizer, scaler, feats: torch.Tensor,
               labels: torch.Tensor, start: int, state_path: str) -> None:
        device = model.data_preprocessor.device
        feats, labels = feats.to(device), labels.to(device)
        base_lr = self.optimizer_cfg['lr']
        seed = runner.seed if runner.seed is not None else 0
        for epoch in range(start, self.max_epochs + 1):
            lr = cosine_warmup_lr(epoch, base_lr, self.max_epochs, self.lr_min,
                                  self.warmup_lr_init, self.warmup_epochs)
            for group in optimizer.param_groups:
                group['lr'] = lr
            gen = torch.Generator().manual_seed(seed * 1000003 + epoch)
            order = torch.randperm(len(labels), generator=gen).to(device)
            total, steps = 0.0, 0
            for begin in range(0, len(order), self.batch_size):
                batch = order[begin:begin + self.batch_size]
                optimizer.zero_grad()
                with self._autocast(model):
                    losses = model.prompt_loss(feats[batch], labels[batch])
                loss = sum(losses.values())
                if scaler is not None:
                    scaler.scale(loss).backward()
                    scaler.step(optimizer)
                    scaler.update()
                else:
                    loss.backward()
                    optimizer.step()
                total += float(loss.detach())
                steps += 1
            mean = total / max(steps, 1)
            if not math.isfinite(mean):
                raise FloatingPointError(
                    f'Stage 1, epoch {epoch}: the prompt loss is {mean}.')
            runner.visualizer.add_scalars(
                dict(stage1_loss=mean, stage1_lr=lr), step=epoch)
            if epoch % self.log_interval == 0 or epoch == self.max_epochs:
                runner.logger.info(
                    f'Stage 1 epoch [{epoch}/{self.max_epochs}] lr: '
                    f'{lr:.3e} loss: {mean:.4f} ({steps} steps)')
            if epoch % self.save_interval == 0 or epoch == self.max_epochs:
                self._save(state_path, model.prompt_learner, optimizer, scaler,
                           epoch)

    def _save(self, path: str, learner, optimizer, scaler, epoch: int) -> None:
        if not is_main_process():
            return
        save_file(
            dict(
                epoch=epoch,
                max_epochs=self.max_epochs,
                prompt_learner=learner.state_dict(),
                optimizer=optimizer.state_dict(),
                scaler=scaler.state_dict() if scaler is not None else {}),
            path)

    def _restore(self, runner, path: str, learner, optimizer, scaler) -> int:
        state = load_file(path, what='stage-1 state')
        for key in ('epoch', 'prompt_learner', 'optimizer'):
            if key not in state:
                raise KeyError(f'{path} has no {key!r}: not a stage-1 state '
                               'of PromptLearningHook.')
        if state.get('max_epochs') != self.max_epochs:
            raise ValueError(
                f'{path} was written by a stage 1 of {state.get("max_epochs")}'
                f' epochs; this config runs {self.max_epochs}.')
        own = learner.state_dict()
        theirs = state['prompt_learner']
        if set(own) != set(theirs) or any(own[k].shape != theirs[k].shape
                                          for k in own):
            raise ValueError(
                f'{path}: the prompt tokens do not fit the model (saved '
                f'{ {k: tuple(v.shape) for k, v in theirs.items()} }, model '
                f'{ {k: tuple(v.shape) for k, v in own.items()} }).')
        learner.load_state_dict(theirs)
        optimizer.load_state_dict(state['optimizer'])
        if scaler is not None and state.get('scaler'):
            scaler.load_state_dict(state['scaler'])
        runner.logger.info(f'Stage 1: resumed after epoch {state["epoch"]} '
                           f'from {path}.')
        return int(state['epoch']) + 1

    @staticmethod
    def _share_prompts(learner) -> None:
        _, world_size = get_dist_info()
        if world_size > 1:
            for param in learner.parameters():
                broadcast(param.data)
