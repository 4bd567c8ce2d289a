# Copyright (c) mmtfclip contributors. All rights reserved.
from collections import Counter

import numpy as np
import pytest

from mmtfclip.datasets.samplers import (IdentityBalancedSampler,
                                        identity_sampler)


class PidDataset:
    """Just the pids: what the sampler reads from a dataset."""

    def __init__(self, counts):
        self.pids = [pid for pid, n in enumerate(counts) for _ in range(n)]

    def __len__(self):
        return len(self.pids)

    def get_data_info(self, idx):
        return dict(pid=self.pids[idx])


# 13 identities with 1..9 tracklets: some fewer than K=4.
COUNTS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 4, 4, 8, 2]


def _batches(sampler, batch_size):
    indices = list(sampler)
    assert len(indices) == len(sampler)
    return [
        indices[i:i + batch_size] for i in range(0, len(indices), batch_size)
    ]


def _ranked(monkeypatch, rank, world_size, dataset, **kwargs):
    monkeypatch.setattr(identity_sampler, 'get_dist_info', lambda:
                        (rank, world_size))
    return IdentityBalancedSampler(dataset, **kwargs)


def test_p_by_k_batches():
    dataset = PidDataset(COUNTS)
    sampler = IdentityBalancedSampler(
        dataset, batch_size=8, num_instances=4, seed=0)
    batches = _batches(sampler, 8)
    # sum(max(n, 4) // 4) = 16 groups of 4, 2 identities per batch.
    assert len(batches) == 8 == sampler.num_steps
    for batch in batches:
        counts = Counter(dataset.pids[i] for i in batch)
        assert sorted(counts.values()) == [4, 4]
    # Identities with >= K tracklets never repeat one inside a group.
    for batch in batches:
        for start in (0, 4):
            group = batch[start:start + 4]
            if COUNTS[dataset.pids[group[0]]] >= 4:
                assert len(set(group)) == 4
    # Each identity appears as often as it has groups.
    seen = Counter(dataset.pids[b[0]]
                   for b in batches) + Counter(dataset.pids[b[4]]
                                               for b in batches)
    assert seen == Counter({p: max(n, 4) // 4 for p, n in enumerate(COUNTS)})


def test_deterministic_per_epoch():
    dataset = PidDataset(COUNTS)
    a = IdentityBalancedSampler(dataset, batch_size=8, seed=3)
    b = IdentityBalancedSampler(dataset, batch_size=8, seed=3)
    assert list(a) == list(b)
    first = list(a)
    a.set_epoch(1)
    b.set_epoch(1)
    assert list(a) == list(b) != first
    a.set_epoch(0)
    assert list(a) == first
    assert list(IdentityBalancedSampler(dataset, batch_size=8,
                                        seed=4)) != first


def test_two_ranks_disjoint_same_steps(monkeypatch):
    dataset = PidDataset(COUNTS * 3)
    samplers = [
        _ranked(
            monkeypatch,
            rank,
            2,
            dataset,
            batch_size=8,
            num_instances=4,
            seed=7) for rank in (0, 1)
    ]
    for epoch in (0, 1):
        for s in samplers:
            s.set_epoch(epoch)
        per_rank = [_batches(s, 8) for s in samplers]
        assert len(per_rank[0]) == len(per_rank[1]) == samplers[0].num_steps
        assert len(samplers[0]) == len(samplers[1])
        all_indices = []
        for b0, b1 in zip(*per_rank):
            assert len(b0) == len(b1) == 8
            pids0 = {dataset.pids[i] for i in b0}
            pids1 = {dataset.pids[i] for i in b1}
            assert len(pids0) == len(pids1) == 2
            assert not pids0 & pids1
            all_indices += b0 + b1
        # Tracklets of identities with >= K tracklets are used at most once.
        counts = Counter(all_indices)
        assert all(c == 1 for i, c in counts.items()
                   if COUNTS[dataset.pids[i] % len(COUNTS)] >= 4)


def test_feasible_schedule_with_one_dominant_identity():
    # One identity has most tracklets: it can only fill one slot per step.
    dataset = PidDataset([40, 4, 4, 4])
    sampler = IdentityBalancedSampler(
        dataset, batch_size=8, num_instances=4, seed=0)
    assert sampler.num_steps == 3
    for batch in _batches(sampler, 8):
        assert len({dataset.pids[i] for i in batch}) == 2


def test_errors():
    dataset = PidDataset(COUNTS)
    with pytest.raises(ValueError, match='divisible by num_instances'):
        IdentityBalancedSampler(dataset, batch_size=10, num_instances=4)
    # One identity per batch: the triplet loss would find no negative.
    with pytest.raises(ValueError, match='batches of one identity'):
        IdentityBalancedSampler(dataset, batch_size=4, num_instances=4)
    with pytest.raises(ValueError, match='cannot fill a step'):
        IdentityBalancedSampler(
            PidDataset([4, 4]), batch_size=12, num_instances=4)


def test_dataset_get_pids_is_used(tiny_mars_session):
    from mmtfclip.datasets import MARS
    root, counts = tiny_mars_session
    dataset = MARS(data_root=str(root), split='train')
    sampler = IdentityBalancedSampler(dataset, batch_size=8, seed=0)
    batches = _batches(sampler, 8)
    assert len(batches) == counts['num_train_tracklets'] // 8
    assert np.all([
        sorted(Counter(dataset.get_data_info(i)['pid']
                       for i in b).values()) == [4, 4] for b in batches
    ])


def test_split_global_batch_is_the_single_process_batch(monkeypatch):
    dataset = PidDataset(COUNTS * 3)
    single = _ranked(
        monkeypatch, 0, 1, dataset, batch_size=16, num_instances=4, seed=3)
    # One process: splitting changes nothing.
    split_one = _ranked(
        monkeypatch,
        0,
        1,
        dataset,
        batch_size=16,
        num_instances=4,
        seed=3,
        split_global_batch=True)
    assert list(split_one) == list(single)
    ranks = [
        _ranked(
            monkeypatch,
            rank,
            4,
            dataset,
            batch_size=16,
            num_instances=4,
            seed=3,
            split_global_batch=True) for rank in range(4)
    ]
    assert ranks[0].rank_batch_size == 4
    assert ranks[0].global_batch_size == 16
    for epoch in (0, 5):
        for s in [single] + ranks:
            s.set_epoch(epoch)
        expected = _batches(single, 16)
        per_rank = [_batches(s, 4) for s in ranks]
        assert all(len(b) == len(expected) for b in per_rank)
        # Each step's global batch is the single process's, rank slices in
        # rank order.
        for step, batch in enumerate(expected):
            assert sum((b[step] for b in per_rank), []) == batch
    assert list(single) != list(
        _ranked(monkeypatch, 0, 1, dataset, batch_size=16, seed=4))


def test_split_global_batch_errors(monkeypatch):
    dataset = PidDataset(COUNTS * 3)
    with pytest.raises(ValueError, match='sampler.batch_size = 16 cannot'):
        _ranked(
            monkeypatch, 0, 3, dataset, batch_size=16, split_global_batch=True)
    # The default mode needs world_size * P identities per step.
    with pytest.raises(ValueError, match='global batch of 128'):
        _ranked(monkeypatch, 0, 8, PidDataset([4] * 20), batch_size=16)
    _ranked(
        monkeypatch,
        0,
        8,
        PidDataset([4] * 20),
        batch_size=16,
        split_global_batch=True)


def _authors_epoch_steps(counts, batch_size, num_instances, rnd):
    """Steps of one epoch of the authors' RandomIdentitySampler
    (datasets/samplers.py), read independently with Python's random."""
    groups = {}
    for pid, n in enumerate(counts):
        idxs = list(range(n))
        if n < num_instances:
            idxs = [rnd.choice(idxs) for _ in range(num_instances)]
        rnd.shuffle(idxs)
        groups[pid] = len(idxs) // num_instances
    available, steps = list(groups), 0
    per_step = batch_size // num_instances
    while len(available) >= per_step:
        for pid in rnd.sample(available, per_step):
            groups[pid] -= 1
            if groups[pid] == 0:
                available.remove(pid)
        steps += 1
    return steps


# A MARS-like training set: 625 identities with long-tailed tracklet counts
# (8,386 tracklets, 13.4 per identity; MARS has 8,298 and 13.3).
MARS_LIKE = np.round(np.random.default_rng(0).lognormal(np.log(10),
                                                        0.8, 625)).clip(
                                                            1, 200).astype(int)


def test_greedy_epoch_lengths_follow_the_authors_process():
    import random
    counts = MARS_LIKE.tolist()
    rnd = random.Random(0)
    theirs = [_authors_epoch_steps(counts, 16, 4, rnd) for _ in range(30)]
    sampler = IdentityBalancedSampler(
        PidDataset(counts), batch_size=16, seed=0, mode='greedy')
    ours = []
    for epoch in range(30):
        sampler.set_epoch(epoch)
        batches = _batches(sampler, 16)
        assert len(batches) == sampler.num_steps
        ours.append(len(batches))
        used = Counter()
        for batch in batches:
            pids = [sampler.dataset.pids[i] for i in batch]
            # P distinct identities, K tracklets each.
            assert sorted(Counter(pids).values()) == [4] * 4
            used.update(set(pids))
        # The epoch stops when fewer than P identities have groups left.
        left = [p for p, n in enumerate(counts) if used[p] < max(n, 4) // 4]
        assert len(left) < 4
    longest = IdentityBalancedSampler(
        PidDataset(counts), batch_size=16, seed=0).num_steps
    # The same process: the same spread of epoch lengths, a few steps
    # below the longest schedule.
    assert abs(np.mean(ours) - np.mean(theirs)) < 1.5
    assert min(theirs) - 2 <= min(ours) and max(ours) <= max(theirs) + 2
    assert max(ours) < longest and max(theirs) < longest
    assert len(set(ours)) > 1


def test_greedy_is_rank_independent_with_a_split_global_batch(monkeypatch):
    dataset = PidDataset(COUNTS * 3)
    single = _ranked(
        monkeypatch,
        0,
        1,
        dataset,
        batch_size=8,
        seed=5,
        mode='greedy',
        split_global_batch=True)
    ranks = [
        _ranked(
            monkeypatch,
            rank,
            2,
            dataset,
            batch_size=8,
            seed=5,
            mode='greedy',
            split_global_batch=True) for rank in (0, 1)
    ]
    for epoch in (0, 1, 2):
        for s in [single] + ranks:
            s.set_epoch(epoch)
        whole = _batches(single, 8)
        halves = [_batches(s, 4) for s in ranks]
        # Every rank runs the steps of the one-process run and takes its
        # half of each of its batches.
        assert len(halves[0]) == len(halves[1]) == len(whole)
        assert len(ranks[0]) == len(ranks[1]) == len(whole) * 4
        for b, h0, h1 in zip(whole, *halves):
            assert h0 + h1 == b
    # Deterministic from seed and epoch.
    single.set_epoch(1)
    again = _ranked(
        monkeypatch,
        0,
        1,
        dataset,
        batch_size=8,
        seed=5,
        mode='greedy',
        split_global_batch=True)
    again.set_epoch(1)
    assert list(again) == list(single)
    with pytest.raises(ValueError, match='mode'):
        IdentityBalancedSampler(dataset, batch_size=8, mode='torchreid')
