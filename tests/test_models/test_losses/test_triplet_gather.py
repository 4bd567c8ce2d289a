# Copyright (c) mmtfclip contributors. All rights reserved.
"""Triplet mining over all ranks equals one process on the global batch."""
import os.path as osp

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from mmtfclip.models.losses import TripletLoss

# 3 identities x 4 tracklets, the global batch; 2 ranks take 6 each, so
# identity 1 is split between them and no rank holds all of an identity.
LABELS = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
WORLD_SIZE = 2


def _model_and_inputs():
    torch.manual_seed(0)
    model = torch.nn.Linear(5, 3)
    inputs = torch.randn(len(LABELS), 5)
    return model, inputs


def _rank_worker(rank, init_file, out_file):
    dist.init_process_group(
        'gloo',
        init_method=f'file://{init_file}',
        rank=rank,
        world_size=WORLD_SIZE)
    try:
        model, inputs = _model_and_inputs()
        rows = slice(rank * 6, rank * 6 + 6)
        loss = TripletLoss(
            margin=0.3, gather=True)(model(inputs[rows]), LABELS[rows])
        loss.backward()
        # What DDP does with the gradients and what the logs average.
        values = [loss.detach(), model.weight.grad, model.bias.grad]
        for value in values:
            dist.all_reduce(value)
            value /= WORLD_SIZE
        if rank == 0:
            torch.save(values, out_file)
    finally:
        dist.destroy_process_group()


def test_gathered_mining_equals_the_global_batch(tmp_path):
    out_file = str(tmp_path / 'ranks.pth')
    mp.spawn(
        _rank_worker,
        args=(str(tmp_path / 'init'), out_file),
        nprocs=WORLD_SIZE)
    assert osp.isfile(out_file)
    loss, weight_grad, bias_grad = torch.load(out_file)

    model, inputs = _model_and_inputs()
    expected = TripletLoss(margin=0.3)(model(inputs), LABELS)
    expected.backward()
    assert expected.item() > 0.05
    torch.testing.assert_close(loss, expected.detach(), rtol=0, atol=1e-6)
    torch.testing.assert_close(
        weight_grad, model.weight.grad, rtol=0, atol=1e-6)
    torch.testing.assert_close(bias_grad, model.bias.grad, rtol=0, atol=1e-6)
    # A rank alone could not even mine its batch: rank 0 holds identities
    # 0 and 1 only, but mining within it gives another loss.
    model.zero_grad()
    local = TripletLoss(margin=0.3)(model(inputs[:6]), LABELS[:6])
    assert abs(local.item() - expected.item()) > 1e-3


def test_gather_without_process_group_is_the_plain_loss():
    assert not dist.is_initialized()
    torch.manual_seed(1)
    feats = torch.randn(8, 4, requires_grad=True)
    labels = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    plain = TripletLoss()(feats, labels)
    gathered = TripletLoss(gather=True)(feats, labels)
    assert torch.equal(plain, gathered)
    assert 'gather=True' in repr(TripletLoss(gather=True))
