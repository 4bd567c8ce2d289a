# Copyright (c) mmtfclip contributors. All rights reserved.
import importlib
from unittest import mock

import numpy as np
import pytest

from mmtfclip.evaluation.functional import (count_valid_matches, evaluate_rank,
                                            evaluate_rank_per_query,
                                            reference_evaluate_rank,
                                            valid_gallery_mask)

rank_module = importlib.import_module(
    'mmtfclip.evaluation.functional.evaluate_rank')

# Three queries (all camera 0) against six gallery tracklets.
Q_PIDS = np.array([1, 2, 3])
Q_CAMS = np.array([0, 0, 0])
G_PIDS = np.array([1, 2, 1, 3, 2, 1])
G_CAMS = np.array([1, 1, 0, 0, 1, 1])
DISTMAT = np.array([
    [0.5, 0.1, 0.2, 0.3, 0.4, 0.9],
    [0.3, 0.2, 0.8, 0.6, 0.1, 0.7],
    [0.4, 0.3, 0.2, 0.1, 0.5, 0.6],
],
                   dtype=np.float32)


def assert_same(result, reference, atol=1e-9):
    """evaluate_rank(..., return_minp=True) against the reference loop."""
    np.testing.assert_array_equal(result[0], reference[0])
    assert result[0].dtype == reference[0].dtype == np.float32
    assert abs(result[1] - reference[1]) <= atol
    assert abs(result[2] - reference[2]) <= atol


def test_hand_worked_example():
    # Query 0 (id 1, cam 0) ranks g1 g2 g3 g4 g0 g5; g2 is id 1 from cam 0
    # and is discarded, leaving g1 g3 g4 g0 g5 with true matches at ranks
    # 4 and 5: AP = (1/4 + 2/5) / 2 = 0.325, INP = 2/5.
    # Query 1 (id 2) ranks g4 g1 first, both id 2 from cam 1: AP = INP = 1.
    # Query 2 (id 3, cam 0): its only gallery tracklet g3 is from cam 0, so
    # it has no true match and is skipped.
    cmc, mean_ap, mean_inp = evaluate_rank(
        DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5, return_minp=True)
    assert cmc.dtype == np.float32
    np.testing.assert_array_equal(cmc, np.float32([0.5, 0.5, 0.5, 1, 1]))
    assert mean_ap == pytest.approx((0.325 + 1.0) / 2, abs=1e-15)
    assert mean_inp == pytest.approx((0.4 + 1.0) / 2, abs=1e-15)
    np.testing.assert_array_equal(
        count_valid_matches(Q_PIDS, G_PIDS, Q_CAMS, G_CAMS), [2, 2, 0])

    per_query = evaluate_rank_per_query(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS,
                                        G_CAMS)
    np.testing.assert_allclose(per_query.ap, [0.325, 1, np.nan], atol=1e-15)
    np.testing.assert_allclose(per_query.inp, [0.4, 1, np.nan], atol=1e-15)
    np.testing.assert_array_equal(per_query.first_match, [3, 0, -1])
    np.testing.assert_array_equal(per_query.num_matches, [2, 2, 0])
    # With the per-query results in one call, and the reference loop.
    *_, same = evaluate_rank(
        DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, return_per_query=True)
    np.testing.assert_array_equal(same.ap, per_query.ap)
    reference = reference_evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS,
                                        G_CAMS, 5)
    assert_same((cmc, mean_ap, mean_inp), reference)
    np.testing.assert_allclose(reference[3], per_query.ap, atol=1e-15)


def test_valid_gallery_mask_is_the_one_rule():
    mask = valid_gallery_mask(Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert mask.shape == (3, 6)
    # Only same id and same camera is discarded: g2 for query 0, g3 for 2.
    np.testing.assert_array_equal(
        ~mask, [[0, 0, 1, 0, 0, 0], [0] * 6, [0, 0, 0, 1, 0, 0]])
    # One query as scalars, and gallery labels gathered per query.
    np.testing.assert_array_equal(
        valid_gallery_mask(1, G_PIDS, 0, G_CAMS), mask[0])
    gathered = valid_gallery_mask(Q_PIDS, G_PIDS[[[0, 2], [1, 4], [3, 3]]],
                                  Q_CAMS, G_CAMS[[[0, 2], [1, 4], [3, 3]]])
    np.testing.assert_array_equal(gathered, [[1, 0], [1, 1], [0, 0]])


def test_query_in_gallery_discards_the_query_itself():
    # The queries join the gallery (MARS protocol); each finds itself at
    # distance 0 from its own camera, which must be discarded. The other
    # queries are farther than every gallery tracklet: nothing changes.
    g_pids = np.concatenate([Q_PIDS, G_PIDS])
    g_cams = np.concatenate([Q_CAMS, G_CAMS])
    distmat = np.concatenate([np.full((3, 3), 5.0, np.float32), DISTMAT], 1)
    np.fill_diagonal(distmat[:, :3], 0.0)
    cmc, mean_ap = evaluate_rank(
        distmat, Q_PIDS, g_pids, Q_CAMS, g_cams, max_rank=5)
    np.testing.assert_array_equal(cmc, np.float32([0.5, 0.5, 0.5, 1, 1]))
    assert mean_ap == pytest.approx(0.6625, abs=1e-15)

    # Add a fourth query, of id 1 from camera 2; with the queries in the
    # gallery it is a true match for query 0, which ranks it first (0.05):
    # query 0's kept ranking is q3 g1 g3 g4 g0 g5 q1 q2 (g2 and itself
    # discarded), matches at ranks 1, 5 and 6: AP = (1 + 2/5 + 3/6) / 3.
    q_pids = np.array([1, 2, 3, 1])
    q_cams = np.array([0, 0, 0, 2])
    g_pids = np.concatenate([q_pids, G_PIDS])
    g_cams = np.concatenate([q_cams, G_CAMS])
    distmat = np.full((4, 10), 5.0, dtype=np.float32)
    distmat[:3, 4:] = DISTMAT
    distmat[np.arange(4), np.arange(4)] = 0.0
    distmat[0, 3] = 0.05
    # Query 3 ranks itself (discarded), g0 0.1 (match), q1 0.2, g2 0.3
    # (match: id 1 from camera 0), g5 0.4 (match), q0 0.6 (match), then
    # the non-matches at 5.0: matches at ranks 1, 3, 4, 5.
    distmat[3, 4:] = [0.1, 5.0, 0.3, 5.0, 5.0, 0.4]
    distmat[3, :3] = [0.6, 0.2, 5.0]
    # Query 1 is unchanged (AP 1) and query 2 still has no true match.
    cmc, mean_ap = evaluate_rank(
        distmat, q_pids, g_pids, q_cams, g_cams, max_rank=3)
    ap0 = (1 + 2 / 5 + 3 / 6) / 3
    ap3 = (1 + 2 / 3 + 3 / 4 + 4 / 5) / 4
    np.testing.assert_array_equal(cmc, np.float32([1, 1, 1]))
    assert mean_ap == pytest.approx((ap0 + 1.0 + ap3) / 3, abs=1e-15)


def test_queries_without_true_match_are_skipped_and_logged():
    with mock.patch.object(rank_module, 'print_log') as log:
        evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5)
    assert any('1 of 3 queries have no true match' in call.args[0]
               for call in log.call_args_list)
    # Dropping the skipped query changes nothing.
    np.testing.assert_array_equal(
        evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, 5)[0],
        evaluate_rank(DISTMAT[:2], Q_PIDS[:2], G_PIDS, Q_CAMS[:2], G_CAMS,
                      5)[0])
    with pytest.raises(ValueError, match='None of the 1 queries'):
        evaluate_rank(DISTMAT[2:], Q_PIDS[2:], G_PIDS, Q_CAMS[2:], G_CAMS)


def test_tie_rule_is_pessimistic():
    # Query 0 (id 1, cam 0): true matches g0 and g5 at 0.2, tied with g1
    # and g3 (other ids); g2 (id 1, cam 0) is discarded. The other ids
    # come first: matches at ranks 3 and 4.
    # Query 1 (id 2, cam 0): every distance is 0; its matches g1 and g4
    # come after the four other-id entries: ranks 5 and 6.
    distmat = np.array(
        [[0.2, 0.2, 0.1, 0.2, 0.3, 0.2], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]],
        dtype=np.float32)
    q_pids, q_cams = np.array([1, 2]), np.array([0, 0])
    per_query = evaluate_rank_per_query(distmat, q_pids, G_PIDS, q_cams,
                                        G_CAMS)
    np.testing.assert_array_equal(per_query.first_match, [2, 4])
    np.testing.assert_allclose(
        per_query.ap, [(1 / 3 + 2 / 4) / 2, (1 / 5 + 2 / 6) / 2], atol=1e-15)
    np.testing.assert_allclose(per_query.inp, [2 / 4, 2 / 6], atol=1e-15)
    # Ties among matches only, or among other ids only, change nothing.
    distmat = np.array([[0.3, 0.1, 0.2, 0.1, 0.1, 0.3]], dtype=np.float32)
    cmc, mean_ap = evaluate_rank(distmat, [1], G_PIDS, [0], G_CAMS, 5)
    # Kept order: g1 g3 g4 (0.1, other ids), g0 g5 (0.3, matches).
    np.testing.assert_array_equal(cmc, np.float32([0, 0, 0, 1, 1]))
    assert mean_ap == pytest.approx((1 / 4 + 2 / 5) / 2, abs=1e-15)


def random_labels(rng, num_q, num_g):
    num_ids = rng.integers(2, 40)
    # Distractors (0) and junk (-1) are in the gallery only; few identities
    # give queries with hundreds of true matches (sorted rows), many give
    # a few each (compared rows).
    g_pids = rng.integers(-1, num_ids, num_g)
    g_cams = rng.integers(0, 6, num_g)
    q_pids = rng.integers(1, num_ids, num_q)
    q_cams = rng.integers(0, 6, num_q)
    return q_pids, g_pids, q_cams, g_cams


@pytest.mark.parametrize('dtype', ['float64', 'float32'])
def test_equals_the_reference_loop_on_real_valued_distances(dtype):
    rng = np.random.default_rng(dtype == 'float32')
    for _ in range(8):
        num_q, num_g = rng.integers(1, 80), rng.integers(60, 700)
        labels = random_labels(rng, num_q, num_g)
        if not count_valid_matches(*labels).any():
            continue
        # Distinct values: no ties, as real-valued distances.
        distmat = rng.permutation(num_q * num_g).reshape(num_q, num_g)
        distmat = (distmat / (num_q * num_g) + rng.random(
            (num_q, num_g)) * 1e-7).astype(dtype)
        reference = reference_evaluate_rank(distmat, *labels)
        assert_same(
            evaluate_rank(distmat, *labels, return_minp=True), reference)
        np.testing.assert_allclose(
            evaluate_rank_per_query(distmat, *labels).ap,
            reference[3],
            atol=1e-9)


@pytest.mark.parametrize('kind', ['int', 'coarse', 'float16'])
def test_ties_equal_the_reference_with_other_ids_first(kind):
    # Distances with many ties: the reference loop ranks them like the tie
    # rule once every same-identity entry is moved just after its equals
    # (+0.5 on the ranks of the distinct values, an order-only change).
    rng = np.random.default_rng(['int', 'coarse', 'float16'].index(kind))
    for _ in range(8):
        num_q, num_g = rng.integers(1, 80), rng.integers(60, 700)
        labels = random_labels(rng, num_q, num_g)
        if not count_valid_matches(*labels).any():
            continue
        if kind == 'int':
            distmat = rng.integers(0, 40, (num_q, num_g)).astype(np.int32)
        elif kind == 'coarse':
            distmat = rng.integers(0, 8, (num_q, num_g)).astype(np.float32)
        else:
            distmat = rng.random((num_q, num_g)).astype(np.float16)
        q_pids, g_pids = labels[:2]
        ranks = np.unique(
            distmat, return_inverse=True)[1].reshape(distmat.shape)
        broken = ranks + 0.5 * (g_pids[None, :] == q_pids[:, None])
        assert_same(
            evaluate_rank(distmat, *labels, return_minp=True),
            reference_evaluate_rank(broken, *labels))


def test_comparing_and_sorting_count_alike():
    # Rows with up to `_MAX_COMPARE_PASSES` true matches are compared with
    # each, longer ones sorted; forcing either way changes nothing.
    rng = np.random.default_rng(5)
    labels = random_labels(rng, 60, 500)
    distmat = rng.integers(0, 30, (60, 500)).astype(np.float32)
    expected = evaluate_rank_per_query(distmat, *labels)
    assert (expected.num_matches.min() < rank_module._MAX_COMPARE_PASSES <
            expected.num_matches.max())
    for passes in (0, 10**6):
        with mock.patch.object(rank_module, '_MAX_COMPARE_PASSES', passes):
            result = evaluate_rank_per_query(distmat, *labels)
        for name in ('ap', 'inp', 'first_match'):
            np.testing.assert_array_equal(
                getattr(result, name), getattr(expected, name))


def test_gallery_beyond_16_bit_counts():
    # More than 65,535 gallery entries: the counts must not wrap.
    rng = np.random.default_rng(3)
    num_g = 70000
    g_pids = np.zeros(num_g, dtype=np.int64)
    g_cams = np.zeros(num_g, dtype=np.int64)
    g_pids[-2:] = 7
    g_cams[-2:] = 1
    distmat = rng.random((2, num_g))
    distmat[:, -2:] = 2.0  # the two true matches come last
    cmc, mean_ap, mean_inp = evaluate_rank(
        distmat, [7, 7], g_pids, [0, 0], g_cams, return_minp=True)
    assert mean_ap == pytest.approx(
        (1 / (num_g - 1) + 2 / num_g) / 2, abs=1e-15)
    assert mean_inp == pytest.approx(2 / num_g, abs=1e-15)
    assert cmc[-1] == 0


@pytest.mark.parametrize('bad', [np.nan, np.inf, -np.inf])
def test_non_finite_distances_are_refused(bad):
    distmat = DISTMAT.copy()
    distmat[[0, 2], [1, 4]] = bad
    with pytest.raises(ValueError) as error:
        evaluate_rank(distmat, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    assert ('2 NaN or infinite distances, in 2 of 3 query rows '
            '(queries 0, 2) and 2 of 6 gallery columns (gallery entries '
            '1, 4)') in str(error.value)


def test_small_gallery_cuts_the_curve():
    cmc, _ = evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, 50)
    assert cmc.shape == (6, )
    assert cmc[-1] == 1


def test_bad_inputs():
    with pytest.raises(ValueError, match='2-D'):
        evaluate_rank(DISTMAT[0], Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match='q_pids must be a 1-D array of 3'):
        evaluate_rank(DISTMAT, Q_PIDS[:2], G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match='g_camids'):
        evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS[:5])
    with pytest.raises(ValueError, match='empty'):
        evaluate_rank(np.zeros((0, 6)), [], G_PIDS, [], G_CAMS)
    with pytest.raises(TypeError, match='real numbers'):
        evaluate_rank(DISTMAT.astype(complex), Q_PIDS, G_PIDS, Q_CAMS, G_CAMS)
    with pytest.raises(ValueError, match='max_rank'):
        evaluate_rank(DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=0)
    with pytest.raises(ValueError, match='2\\*\\*53'):
        evaluate_rank(
            np.full((3, 6), 2**60, dtype=np.int64), Q_PIDS, G_PIDS, Q_CAMS,
            G_CAMS)
