# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np
from mmengine.dist import get_dist_info, sync_random_seed
from torch.utils.data import Dataset, Sampler

from mmtfclip.registry import DATA_SAMPLERS


def _dataset_pids(dataset: Dataset) -> List[int]:
    if hasattr(dataset, 'get_pids'):
        return list(dataset.get_pids())
    return [dataset.get_data_info(i)['pid'] for i in range(len(dataset))]


@DATA_SAMPLERS.register_module()
class IdentityBalancedSampler(Sampler):
    """P x K sampling: K tracklets of each of P identities per batch.

    ``P = batch_size // num_instances`` and ``K = num_instances``: the batch
    the hard-mining triplet loss needs. Every step draws one global batch of
    distinct identities and each rank takes its own contiguous slice of it,
    so all ranks run the same number of steps and the whole schedule depends
    only on the seed and the epoch (:meth:`set_epoch`), never on the rank
    that computes it. ``split_global_batch`` says how big the global batch
    is:

    * ``split_global_batch=False`` (default): ``batch_size`` is per rank.
      A step draws ``P * world_size`` identities and each rank gets its own
      P, so the ranks' batches never share an identity and the global batch
      grows with the number of ranks (``world_size * batch_size``).
    * ``split_global_batch=True``: ``batch_size`` is the global batch. A
      step draws P identities, the same batch one process would draw, and
      rank ``r`` takes samples ``[r * b, (r + 1) * b)`` of it with
      ``b = batch_size // world_size``, which must be the data loader's
      ``batch_size``. A rank's slice may hold part of one identity only, so
      the triplet loss must mine over all ranks (``TripletLoss(gather=
      True)``) and the BNNecks need SyncBN to keep the single-GPU recipe.

    Whatever the settings, each identity's tracklets are shuffled and cut
    into groups of K (the remainder is dropped); an identity with fewer than K
    tracklets gives one group drawn with replacement. ``mode`` says how the
    groups become steps:

    * ``mode='greedy'``: the TF-CLIP authors' ``RandomIdentitySampler``
      (``datasets/samplers.py``, torchreid's process). Each step draws the
      step's identities (P, or ``P * world_size`` without
      ``split_global_batch``) uniformly without replacement among the
      identities that have a group left and takes the next group of each;
      the epoch ends as soon as fewer identities have groups left than a
      step needs, and their groups are dropped. The number of steps varies
      a little from epoch to epoch (on MARS usually a few below
      ``'longest'``'s); ``len()`` gives the current epoch's exact count.
    * ``mode='longest'`` (default): the largest number of steps B for which
      the groups fill B steps of distinct identities, about ``sum(groups) /
      identities_per_step``; identities with more than B groups use B of
      them (a random subset each epoch). Steps are drawn so that a full
      schedule always exists: identities that must appear in every
      remaining step are taken first, the rest uniformly. Every epoch has B
      steps.

    Either way the schedule is drawn from a generator seeded with (seed,
    epoch) alone, the same on every rank, so each rank yields
    ``steps * rank_batch_size`` indices and the data loader (same batch
    size, any ``drop_last``) runs exactly that many iterations on every
    rank.

    Args:
        dataset (Dataset): A dataset whose items carry ``pid``.
        batch_size (int): Samples per batch on each rank, or in all ranks
            together with ``split_global_batch``; divisible by
            ``num_instances``.
        num_instances (int): Tracklets per identity in a batch (K).
            Defaults to 4.
        seed (int, optional): Random seed; it must be the same on all ranks
            (keep mmengine's ``randomness.diff_rank_seed=False``, the
            default). Defaults to None (a seed synchronised across ranks).
        split_global_batch (bool): ``batch_size`` is the global batch,
            split across the ranks. Defaults to False.
        mode (str): ``'greedy'`` (the authors' epoch) or ``'longest'``.
            Defaults to ``'longest'``.
    """

    MODES = ('greedy', 'longest')

    def __init__(self,
                 dataset: Dataset,
                 batch_size: int,
                 num_instances: int = 4,
                 seed: Optional[int] = None,
                 split_global_batch: bool = False,
                 mode: str = 'longest') -> None:
        if mode not in self.MODES:
            raise ValueError(f'IdentityBalancedSampler: mode must be one of '
                             f'{self.MODES}, got {mode!r}')
        if num_instances < 1 or batch_size < 1:
            raise ValueError('batch_size and num_instances must be >= 1, got '
                             f'{batch_size} and {num_instances}')
        if batch_size % num_instances:
            raise ValueError(
                f'IdentityBalancedSampler: batch_size ({batch_size}) must be '
                f'divisible by num_instances ({num_instances}): a batch is '
                'P identities x K tracklets.')
        self.rank, self.world_size = get_dist_info()
        if split_global_batch and batch_size % self.world_size:
            raise ValueError(
                f'IdentityBalancedSampler: the global batch '
                f'train_dataloader.sampler.batch_size = {batch_size} cannot '
                f'be split evenly across {self.world_size} ranks; change it '
                'or the number of processes.')
        self.dataset = dataset
        self.batch_size = batch_size
        self.num_instances = num_instances
        self.split_global_batch = split_global_batch
        self.mode = mode
        self.num_pids_per_batch = batch_size // num_instances
        if self.num_pids_per_batch < 2:
            # The triplet loss mines each anchor's negative in its batch
            # (the global one with split_global_batch and gather=True).
            raise ValueError(
                f'IdentityBalancedSampler: batch_size ({batch_size}) / '
                f'num_instances ({num_instances}) gives batches of one '
                'identity, in which the triplet loss finds no negative; '
                'put at least two identities in a batch.')
        if split_global_batch:
            self.global_batch_size = batch_size
            self.rank_batch_size = batch_size // self.world_size
        else:
            self.global_batch_size = batch_size * self.world_size
            self.rank_batch_size = batch_size
        self.seed = sync_random_seed() if seed is None else int(seed)
        self.epoch = 0

        index_of: Dict[int, List[int]] = {}
        for idx, pid in enumerate(_dataset_pids(dataset)):
            index_of.setdefault(int(pid), []).append(idx)
        self.pids = sorted(index_of)
        self.indices = [np.asarray(index_of[p]) for p in self.pids]
        self.num_pids_per_step = self.global_batch_size // num_instances
        if len(self.pids) < self.num_pids_per_step:
            raise ValueError(
                f'IdentityBalancedSampler: {len(self.pids)} identities cannot '
                f'fill a step of {self.num_pids_per_step} identities '
                f'(a global batch of {self.global_batch_size} on '
                f'{self.world_size} ranks); lower batch_size or raise '
                'num_instances.')
        self.groups = np.array([
            max(len(idx), num_instances) // num_instances
            for idx in self.indices
        ])
        self._longest_steps = self._max_steps()
        self._greedy_plan = None

    @property
    def num_steps(self) -> int:
        """Steps of the current epoch."""
        if self.mode == 'longest':
            return self._longest_steps
        return len(self._greedy()[0])

    def _max_steps(self) -> int:
        per_step = self.num_pids_per_step
        steps = int(self.groups.sum()) // per_step
        # A step needs distinct identities: an identity serves at most one
        # group per step.
        while np.minimum(self.groups, steps).sum() < steps * per_step:
            steps -= 1
        return steps

    def _groups_of(self, k: int, rng: np.random.Generator) -> np.ndarray:
        idx = self.indices[k]
        size = self.num_instances
        if len(idx) < size:
            return rng.choice(idx, size=size, replace=True)[None]
        picked = rng.permutation(idx)[:self.groups[k] * size]
        return picked.reshape(-1, size)

    def _schedule(self) -> Tuple[np.ndarray, np.random.Generator]:
        """Identities of every step, ``[num_steps, identities per step]``,
        and the generator that then draws the groups."""
        rng = np.random.default_rng([self.seed, self.epoch])
        num_steps = self._longest_steps
        left = np.minimum(self.groups, num_steps)
        per_step = self.num_pids_per_step
        steps = np.empty((num_steps, per_step), dtype=np.int64)
        for s in range(num_steps):
            remaining = num_steps - s
            slack = int(np.minimum(left, remaining).sum()) - \
                remaining * per_step
            # Identities with a group for every remaining step: skipping
            # more of them than the slack would leave a step short.
            full = np.flatnonzero(left >= remaining)
            must = rng.choice(
                full, size=max(0,
                               len(full) - slack), replace=False)
            pool = np.setdiff1d(np.flatnonzero(left > 0), must)
            rest = rng.choice(pool, size=per_step - len(must), replace=False)
            chosen = rng.permutation(np.concatenate([must, rest]))
            left[chosen] -= 1
            steps[s] = chosen
        return steps, rng

    def _greedy(self) -> Tuple[List[np.ndarray], List[np.ndarray]]:
        """The authors' process for this epoch: the identities of every
        step and the groups of every identity (cached per epoch)."""
        if self._greedy_plan is not None and \
                self._greedy_plan[0] == self.epoch:
            return self._greedy_plan[1]
        rng = np.random.default_rng([self.seed, self.epoch])
        groups = [self._groups_of(k, rng) for k in range(len(self.pids))]
        left = self.groups.copy()
        steps = []
        while True:
            available = np.flatnonzero(left > 0)
            if len(available) < self.num_pids_per_step:
                break
            chosen = rng.choice(
                available, size=self.num_pids_per_step, replace=False)
            left[chosen] -= 1
            steps.append(chosen)
        self._greedy_plan = (self.epoch, (steps, groups))
        return steps, groups

    def __iter__(self) -> Iterator[int]:
        if self.mode == 'greedy':
            steps, groups = self._greedy()
        else:
            steps, rng = self._schedule()
            groups = [self._groups_of(k, rng) for k in range(len(self.pids))]
        used = np.zeros(len(self.pids), dtype=np.int64)
        first = self.rank * self.rank_batch_size
        out = []
        for step in steps:
            batch = []
            for k in step:
                batch.extend(groups[k][used[k]].tolist())
                used[k] += 1
            out.extend(batch[first:first + self.rank_batch_size])
        return iter(out)

    def __len__(self) -> int:
        return self.num_steps * self.rank_batch_size

    def set_epoch(self, epoch: int) -> None:
        """Set the epoch; the schedule is a function of seed and epoch.

        Args:
            epoch (int): The epoch number.
        """
        self.epoch = epoch
