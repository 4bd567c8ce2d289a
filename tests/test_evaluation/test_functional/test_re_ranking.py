# Copyright (c) mmtfclip contributors. All rights reserved.
import importlib

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from mmtfclip.evaluation.functional import evaluate_rank, re_ranking


def plain_re_ranking(q_g, q_q, g_g, k1, k2, lambda_value):
    """k-reciprocal re-ranking written as a loop over samples.

    Same arithmetic as the standard implementation: distances squared in
    their dtype then float32, column-normalised, argsort neighbours, float32
    encodings, np.mean query expansion, float32 Jaccard accumulation.
    """
    num_q = q_g.shape[0]
    full = np.power(np.block([[q_q, q_g], [q_g.T, g_g]]), 2)
    full = full.astype(np.float32)
    dist = np.transpose(1. * full / np.max(full, axis=0))
    num = dist.shape[0]
    rank = np.argsort(dist, axis=1)
    half = int(np.around(k1 / 2.))

    def reciprocal(i, k):
        ahead = rank[i, :k + 1]
        back = np.array([i in rank[j, :k + 1] for j in ahead], dtype=bool)
        return ahead[back]

    codes = np.zeros((num, num), dtype=np.float32)
    for i in range(num):
        core = reciprocal(i, k1)
        members = core
        for candidate in core:
            extra = reciprocal(candidate, half)
            if len(np.intersect1d(extra, core)) > 2. / 3 * len(extra):
                members = np.append(members, extra)
        members = np.unique(members)
        weight = np.exp(-dist[i, members])
        codes[i, members] = weight / np.sum(weight)
    if k2 != 1:
        codes = np.stack(
            [np.mean(codes[rank[i, :k2]], axis=0) for i in range(num)])
    jaccard = np.zeros((num_q, num), dtype=np.float32)
    for i in range(num_q):
        shared = np.zeros(num, dtype=np.float32)
        for feature in np.flatnonzero(codes[i]):
            holders = np.flatnonzero(codes[:, feature])
            shared[holders] += np.minimum(codes[i, feature], codes[holders,
                                                                   feature])
        jaccard[i] = 1 - shared / (2. - shared)
    final = jaccard * (1 - lambda_value) + dist[:num_q] * lambda_value
    return final[:, num_q:]


def make_features(rng,
                  num_q,
                  num_g,
                  dim=8,
                  num_ids=6,
                  duplicates=False,
                  coarse=False):
    centres = rng.standard_normal((num_ids, dim))
    q_pids = rng.integers(0, num_ids, num_q)
    g_pids = rng.integers(0, num_ids, num_g)
    query = centres[q_pids] + 0.6 * rng.standard_normal((num_q, dim))
    gallery = centres[g_pids] + 0.6 * rng.standard_normal((num_g, dim))
    if duplicates:
        # Queries in the gallery: exact ties at distance 0.
        gallery[:num_q] = query
        g_pids[:num_q] = q_pids
    if coarse:
        # Many tied distances.
        query, gallery = np.round(query), np.round(gallery)
    return query, gallery, q_pids, g_pids


def distances(query, gallery, dtype):
    return (cdist(query, gallery).astype(dtype), cdist(query,
                                                       query).astype(dtype),
            cdist(gallery, gallery).astype(dtype))


@pytest.mark.parametrize('k1,k2,lambda_value,dtype,duplicates,coarse', [
    (20, 6, 0.3, np.float32, False, False),
    (20, 6, 0.3, np.float64, True, False),
    (5, 3, 0.0, np.float32, True, True),
    (4, 1, 1.0, np.float64, False, True),
    (60, 10, 0.5, np.float32, False, False),
    (1, 2, 0.3, np.float32, True, False),
])
def test_identical_to_plain_loop(k1, k2, lambda_value, dtype, duplicates,
                                 coarse):
    rng = np.random.default_rng(k1 * 100 + k2)
    for num_q, num_g in ((7, 30), (12, 45), (1, 5)):
        query, gallery, _, _ = make_features(
            rng, num_q, num_g, duplicates=duplicates, coarse=coarse)
        q_g, q_q, g_g = distances(query, gallery, dtype)
        expected = plain_re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)
        result = re_ranking(q_g, q_q, g_g, k1, k2, lambda_value)
        assert result.dtype == np.float32 == expected.dtype
        assert result.shape == (num_q, num_g)
        # Bit for bit.
        np.testing.assert_array_equal(result, expected)


def test_mixed_dtypes_square_in_the_wider_one():
    rng = np.random.default_rng(3)
    query, gallery, _, _ = make_features(rng, 6, 25)
    q_g, q_q, g_g = distances(query, gallery, np.float64)
    q_g = q_g.astype(np.float32)
    np.testing.assert_array_equal(
        re_ranking(q_g, q_q, g_g), plain_re_ranking(q_g, q_q, g_g, 20, 6, 0.3))


def test_re_ranking_helps_on_clustered_data():
    # Tight identity clusters with cross-camera noise: the k-reciprocal
    # neighbourhoods are the identities, so mAP does not drop.
    rng = np.random.default_rng(0)
    query, gallery, q_pids, g_pids = make_features(
        rng, 30, 150, dim=16, num_ids=10)
    q_g, q_q, g_g = distances(query, gallery, np.float32)
    q_cams, g_cams = np.zeros(30), np.ones(150)
    _, base = evaluate_rank(q_g, q_pids, g_pids, q_cams, g_cams)
    _, reranked = evaluate_rank(
        re_ranking(q_g, q_q, g_g), q_pids, g_pids, q_cams, g_cams)
    assert reranked >= base
    # The result mixes a Jaccard distance and a normalised distance, both
    # in [0, 1].
    result = re_ranking(q_g, q_q, g_g)
    assert result.min() >= 0 and result.max() <= 1


def test_bad_inputs():
    q_g, q_q, g_g = np.ones((2, 3)), np.ones((2, 2)), np.ones((3, 3))
    with pytest.raises(ValueError, match='q_q_dist must have shape'):
        re_ranking(q_g, np.ones((3, 3)), g_g)
    with pytest.raises(ValueError, match='g_g_dist must have shape'):
        re_ranking(q_g, q_q, np.ones((2, 2)))
    with pytest.raises(ValueError, match='q_g_dist must be a non-empty'):
        re_ranking(np.ones(3), q_q, g_g)
    with pytest.raises(ValueError, match='k1 must be an integer'):
        re_ranking(q_g, q_q, g_g, k1=0)
    with pytest.raises(ValueError, match='k2 must be an integer'):
        re_ranking(q_g, q_q, g_g, k2=2.5)
    with pytest.raises(ValueError, match='lambda_value'):
        re_ranking(q_g, q_q, g_g, lambda_value=1.5)
    with pytest.raises(ValueError, match='NaN or infinite'):
        re_ranking(np.full((2, 3), np.nan), q_q, g_g)
    with pytest.raises(ValueError, match='all distances to sample 0'):
        re_ranking(np.zeros((2, 3)), np.zeros((2, 2)), g_g)
    with pytest.raises(TypeError, match='real numbers'):
        re_ranking(q_g.astype(complex), q_q, g_g)


def test_chunked_paths_are_identical(monkeypatch):
    # Small chunks force every loop over rows and over overlap terms to
    # take several steps.
    # The package exports the function under the module's name.
    module = importlib.import_module(
        'mmtfclip.evaluation.functional.re_ranking')
    monkeypatch.setattr(module, '_ROW_CHUNK', 7)
    monkeypatch.setattr(module, '_PAIR_CHUNK', 50)
    rng = np.random.default_rng(11)
    query, gallery, _, _ = make_features(rng, 16, 50, duplicates=True)
    q_g, q_q, g_g = distances(query, gallery, np.float32)
    np.testing.assert_array_equal(
        module.re_ranking(q_g, q_q, g_g, k1=10, k2=4),
        plain_re_ranking(q_g, q_q, g_g, 10, 4, 0.3))
