# Copyright (c) mmtfclip contributors. All rights reserved.
from unittest import mock

import numpy as np
import pytest

from mmtfclip.evaluation.functional import count_valid_matches, evaluate_rank


def plain_evaluate_rank(distmat, q_pids, g_pids, q_camids, g_camids, max_rank):
    """The usual per-query loop: argsort, drop same id + camera, CMC, AP."""
    max_rank = min(max_rank, distmat.shape[1])
    curves, aps = [], []
    for q in range(distmat.shape[0]):
        order = np.argsort(distmat[q])
        drop = (g_pids[order] == q_pids[q]) & (g_camids[order] == q_camids[q])
        hits = (g_pids[order][~drop] == q_pids[q]).astype(np.int32)
        if not hits.any():
            continue
        found = hits.cumsum()
        curves.append(np.minimum(found, 1)[:max_rank])
        precision = found / np.arange(1.0, len(hits) + 1)
        aps.append((precision * hits).sum() / hits.sum())
    cmc = np.asarray(curves).astype(np.float32).sum(0) / float(len(curves))
    return cmc, np.mean(aps)


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


def test_hand_worked_example():
    # Query 0 (id 1, cam 0) ranks g1 g2 g3 g4 g0 g5; g2 is id 1 from cam 0
    # and is discarded, leaving g1 g3 g4 g0 g5 with true matches at ranks
    # 4 and 5: AP = (1/4 + 2/5) / 2 = 0.325.
    # Query 1 (id 2) ranks g4 g1 first, both id 2 from cam 1: AP = 1.
    # Query 2 (id 3, cam 0): its only gallery tracklet g3 is from cam 0, so
    # it has no true match and is skipped.
    cmc, mean_ap = evaluate_rank(
        DISTMAT, Q_PIDS, G_PIDS, Q_CAMS, G_CAMS, max_rank=5)
    assert cmc.dtype == np.float32
    np.testing.assert_array_equal(cmc, np.float32([0.5, 0.5, 0.5, 1, 1]))
    assert mean_ap == pytest.approx((0.325 + 1.0) / 2, abs=1e-15)
    np.testing.assert_array_equal(
        count_valid_matches(Q_PIDS, G_PIDS, Q_CAMS, G_CAMS), [2, 2, 0])


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
    with mock.patch('mmtfclip.evaluation.functional.evaluate_rank.'
                    'print_log') as log:
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


def test_ties_follow_argsort():
    # Matches tied with non-matches: the ranking is np.argsort's.
    distmat = np.array(
        [[0.2, 0.2, 0.1, 0.2, 0.3, 0.2], [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]],
        dtype=np.float32)
    q_pids, q_cams = np.array([1, 2]), np.array([0, 0])
    expected = plain_evaluate_rank(distmat, q_pids, G_PIDS, q_cams, G_CAMS, 5)
    result = evaluate_rank(distmat, q_pids, G_PIDS, q_cams, G_CAMS, 5)
    np.testing.assert_array_equal(result[0], expected[0])
    assert result[1] == expected[1]
    # Ties among matches only, or among non-matches only, leave the
    # numbers independent of the tie order.
    distmat = np.array([[0.3, 0.1, 0.2, 0.1, 0.1, 0.3]], dtype=np.float32)
    cmc, mean_ap = evaluate_rank(distmat, [1], G_PIDS, [0], G_CAMS, 5)
    # Kept order: g1 g3 g4 (0.1, non-matches), g0 g5 (0.3, matches).
    np.testing.assert_array_equal(cmc, np.float32([0, 0, 0, 1, 1]))
    assert mean_ap == pytest.approx((1 / 4 + 2 / 5) / 2, abs=1e-15)


@pytest.mark.parametrize(
    'kind', ['float32', 'float64', 'coarse', 'int', 'nan', 'float16'])
def test_identical_to_plain_loop_on_random_inputs(kind):
    rng = np.random.default_rng(
        ['float32', 'float64', 'coarse', 'int', 'nan', 'float16'].index(kind))
    for trial in range(8):
        num_q, num_g = rng.integers(1, 80), rng.integers(60, 700)
        num_ids = rng.integers(2, 40)
        # Distractors (0) and junk (-1) are in the gallery only.
        g_pids = rng.integers(-1, num_ids, num_g)
        g_cams = rng.integers(0, 6, num_g)
        q_pids = rng.integers(1, num_ids, num_q)
        q_cams = rng.integers(0, 6, num_q)
        if kind == 'int':
            distmat = rng.integers(0, 40, (num_q, num_g)).astype(np.int32)
        elif kind == 'coarse':
            # Many ties between matches and non-matches.
            distmat = rng.integers(0, 8, (num_q, num_g)).astype(np.float32)
        elif kind == 'float16':
            distmat = rng.random((num_q, num_g)).astype(np.float16)
        else:
            distmat = rng.random((
                num_q,
                num_g)).astype(np.float64 if kind == 'float64' else np.float32)
        if kind == 'nan':
            distmat[rng.random(distmat.shape) < 0.01] = np.nan
        if not count_valid_matches(q_pids, g_pids, q_cams, g_cams).any():
            continue
        expected = plain_evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams,
                                       50)
        cmc, mean_ap = evaluate_rank(
            distmat,
            q_pids,
            g_pids,
            q_cams,
            g_cams,
            chunk_size=int(rng.integers(1, 40)))
        # Bit for bit, not only to rounding.
        np.testing.assert_array_equal(cmc, expected[0])
        assert cmc.dtype == expected[0].dtype
        assert mean_ap == expected[1], (trial, mean_ap - expected[1])


def test_long_rows_sum_like_numpy():
    # Rows longer than numpy's pairwise-summation block (128) and than its
    # buffer (8192), with many true matches each.
    rng = np.random.default_rng(7)
    num_g = 9000
    g_pids = rng.integers(0, 3, num_g)
    g_cams = rng.integers(0, 2, num_g)
    # Identity 5 has two gallery tracklets, near the top of query 4's
    # ranking: its row sums over a short prefix of the 9000 entries.
    g_pids[[10, 20]] = 5
    q_pids, q_cams = np.array([0, 1, 2, 1, 5]), np.array([0, 1, 0, 0, 1])
    g_cams[[10, 20]] = 0
    distmat = rng.random((5, num_g))
    distmat[4, [10, 20]] = [0.001, 0.0005]
    expected = plain_evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams, 50)
    cmc, mean_ap = evaluate_rank(distmat, q_pids, g_pids, q_cams, g_cams)
    np.testing.assert_array_equal(cmc, expected[0])
    assert mean_ap == expected[1]


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
