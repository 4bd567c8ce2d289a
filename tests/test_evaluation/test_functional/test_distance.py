# Copyright (c) mmtfclip contributors. All rights reserved.
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mmtfclip.evaluation.functional import compute_distance_matrix


def test_euclidean_is_squared_distance():
    torch.manual_seed(0)
    query, gallery = torch.randn(5, 16), torch.randn(7, 16)
    dist = compute_distance_matrix(query, gallery)
    assert dist.shape == (5, 7) and dist.dtype == torch.float32
    torch.testing.assert_close(dist, torch.cdist(query, gallery).pow(2))
    # Rounding never makes a distance negative; identical vectors give 0.
    self_dist = compute_distance_matrix(query, query)
    assert (self_dist >= 0).all()
    torch.testing.assert_close(
        self_dist.diagonal(), torch.zeros(5), atol=1e-5, rtol=0)


def test_cosine_is_one_minus_similarity():
    torch.manual_seed(1)
    query, gallery = torch.randn(4, 8), torch.randn(6, 8)
    dist = compute_distance_matrix(query, gallery, metric='cosine')
    expected = 1 - F.cosine_similarity(query[:, None], gallery[None], dim=2)
    torch.testing.assert_close(dist, expected)
    # Scale-free, unlike the euclidean distance.
    torch.testing.assert_close(
        compute_distance_matrix(3 * query, gallery, metric='cosine'), dist)


def test_half_and_numpy_inputs():
    query = np.random.default_rng(0).standard_normal((3, 4))
    dist = compute_distance_matrix(
        torch.from_numpy(query).half(),
        torch.from_numpy(query).half())
    assert dist.dtype == torch.float32
    assert compute_distance_matrix(query, query).shape == (3, 3)


def test_bad_inputs():
    with pytest.raises(ValueError, match='Unknown distance metric'):
        compute_distance_matrix(torch.ones(2, 3), torch.ones(2, 3), 'l1')
    with pytest.raises(ValueError, match='differ in size'):
        compute_distance_matrix(torch.ones(2, 3), torch.ones(2, 4))
    with pytest.raises(ValueError, match='2-D'):
        compute_distance_matrix(torch.ones(3), torch.ones(2, 3))
