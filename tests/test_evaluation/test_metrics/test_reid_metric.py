# Copyright (c) mmtfclip contributors. All rights reserved.
import json
from unittest import mock

import numpy as np
import pytest
import torch
from mmengine.evaluator import Evaluator
from mmpretrain.structures import DataSample

from mmtfclip.datasets.transforms import PackTrackletInputs
from mmtfclip.evaluation import ReIDMetric
from mmtfclip.evaluation.functional import (compute_distance_matrix,
                                            evaluate_rank,
                                            evaluate_rank_per_query,
                                            re_ranking)
from mmtfclip.registry import METRICS


def make_sample(feature, pid, camid, split, tracklet_id=None, frames=None):
    """A data sample as the model's predict step returns it."""
    sample = DataSample().set_gt_label(pid)
    sample.set_field(torch.tensor(camid, dtype=torch.int64), 'camid')
    sample.set_field(
        torch.as_tensor(feature, dtype=torch.float32), 'pred_feature')
    meta = dict(split=split)
    if tracklet_id is not None:
        meta['tracklet_id'] = tracklet_id
    if frames is not None:
        meta['frame_paths'] = frames
    sample.set_metainfo(meta)
    return sample


def hand_samples():
    """Queries A (id 1), B (id 2), D (id 9, nowhere else), camera 0; a
    gallery of id 1 (cameras 1 and 0) and id 2 (camera 1), on a line."""
    rows = [([0, 0], 1, 0, 'query'), ([10, 0], 2, 0, 'query'),
            ([30, 0], 9, 0, 'query'), ([1, 0], 1, 1, 'gallery'),
            ([-3, 0], 2, 1, 'gallery'), ([0.5, 0], 1, 0, 'gallery'),
            ([9, 0], 2, 1, 'gallery')]
    return [
        make_sample(f, p, c, s, tracklet_id=i)
        for i, (f, p, c, s) in enumerate(rows)
    ]


def run(metric, samples):
    metric.process(None, samples)
    return metric.evaluate(len(samples))


def test_hand_worked_both_protocols():
    # Gallery only (torchreid): A ranks g0 (match) first: AP = INP = 1. B
    # ranks g3 (match, d=1), g0 (81), g2 (90.25), g1 (match, 169): AP =
    # (1 + 2/4) / 2 = 0.75, INP = 2/4. D has no true match and is skipped.
    metric = ReIDMetric(
        feat_norm=False, query_in_gallery=False, topk=(1, 2, 5))
    with mock.patch(
            'mmtfclip.evaluation.metrics.reid_metric.print_log') as log:
        result = run(metric, hand_samples())
    assert result == {
        'reid/mAP': 87.5,
        'reid/mINP': 75.0,
        'reid/rank1': 100.0,
        'reid/rank2': 100.0,
        'reid/rank5': 100.0,
        'reid/mAP+rank1': 187.5
    }
    message = log.call_args_list[0].args[0]
    assert 'mAP 87.50, mINP 75.00, rank1 100.00' in message
    assert 'mAP+rank1 187.50' in message
    assert 'gallery tracklets only (query_in_gallery=False' in message
    assert '3 queries vs 4 gallery entries' in message
    assert '1 queries without a true match' in message
    assert 'squared euclidean on raw features' in message
    assert 're-ranking = off' in message
    assert 'sampling = not recorded' in message

    # Queries in the gallery (MARS / TF-CLIP): each query discards itself;
    # A then sees B at 100 after its match, B sees A at 100 before g1:
    # AP(B) = (1 + 2/5) / 2 = 0.7, INP(B) = 2/5.
    metric = ReIDMetric(feat_norm=False, query_in_gallery=True, topk=(1, 2, 5))
    with mock.patch(
            'mmtfclip.evaluation.metrics.reid_metric.print_log') as log:
        result = run(metric, hand_samples())
    assert result['reid/mAP'] == 85.0
    assert result['reid/mINP'] == 70.0
    assert result['reid/rank1'] == 100.0
    assert result['reid/mAP+rank1'] == 185.0
    message = log.call_args_list[0].args[0]
    assert '3 queries vs 7 gallery entries' in message
    assert 'the query itself included, discarded' in message


def test_matches_the_functions_on_random_data():
    rng = np.random.default_rng(0)
    num = 80
    pids = rng.integers(0, 12, num)
    cams = rng.integers(0, 4, num)
    splits = np.where(np.arange(num) < 20, 'query', 'gallery')
    centres = rng.standard_normal((12, 32))
    feats = centres[pids] + rng.standard_normal((num, 32))
    samples = [
        make_sample(feats[i], int(pids[i]), int(cams[i]), str(splits[i]))
        for i in range(num)
    ]
    metric = ReIDMetric(
        dist_metric='cosine',
        rerank=True,
        k1=8,
        k2=3,
        query_in_gallery=False,
        topk=(1, 5))
    result = run(metric, samples)

    features = torch.nn.functional.normalize(torch.tensor(feats).float())
    query, gallery = features[:20], features[20:]
    distmat = re_ranking(
        compute_distance_matrix(query, gallery, 'cosine').numpy(),
        compute_distance_matrix(query, query, 'cosine').numpy(),
        compute_distance_matrix(gallery, gallery, 'cosine').numpy(),
        k1=8,
        k2=3)
    cmc, mean_ap, mean_inp = evaluate_rank(
        distmat, pids[:20], pids[20:], cams[:20], cams[20:], return_minp=True)
    assert result['reid/mAP'] == round(mean_ap * 100, 4)
    assert result['reid/mINP'] == round(mean_inp * 100, 4)
    assert result['reid/mAP+rank1'] == round((mean_ap + cmc[0]) * 100, 4)
    assert result['reid/rank1'] == round(float(cmc[0]) * 100, 4)
    assert result['reid/rank5'] == round(float(cmc[4]) * 100, 4)


def test_evaluator_and_registry():
    # mmengine's Evaluator hands the metric dicts (DataSample.to_dict()).
    evaluator = Evaluator(
        dict(type='ReIDMetric', feat_norm=False, query_in_gallery=False))
    assert isinstance(evaluator.metrics[0], ReIDMetric)
    evaluator.process(hand_samples())
    metrics = evaluator.evaluate(7)
    assert metrics['reid/mAP'] == 87.5
    assert set(metrics) == {
        'reid/mAP', 'reid/mINP', 'reid/rank1', 'reid/rank5', 'reid/rank10',
        'reid/rank20', 'reid/mAP+rank1'
    }
    assert isinstance(METRICS.build(dict(type='ReIDMetric')), ReIDMetric)


def test_feature_normalisation_is_applied():
    # Scaled copies of one direction: identical after L2 normalisation.
    samples = [
        make_sample([1, 0], 1, 0, 'query'),
        make_sample([0, 1], 2, 0, 'query'),
        make_sample([0, 3], 2, 1, 'gallery'),
        make_sample([5, 0.1], 1, 1, 'gallery'),
    ]
    normalised = run(ReIDMetric(query_in_gallery=False), samples)
    raw = run(ReIDMetric(feat_norm=False, query_in_gallery=False), samples)
    assert normalised['reid/mAP'] == 100.0
    assert raw['reid/mAP'] < 100.0


def test_dump(tmp_path):
    path = tmp_path / 'out' / 'dump.npz'
    samples = [
        make_sample(
            np.arange(4.0) + i,
            i % 2,
            i % 3,
            'query' if i < 2 else 'gallery',
            tracklet_id=i,
            frames=[f'/data/{i}/{j}.jpg' for j in range(i + 1)])
        for i in range(6)
    ]
    run(ReIDMetric(dump_path=str(path), topk=1), samples)
    dump = np.load(path, allow_pickle=False)
    assert dump['features'].shape == (6, 4)
    np.testing.assert_allclose(
        np.linalg.norm(dump['features'], axis=1), 1, rtol=1e-6)
    np.testing.assert_array_equal(dump['pids'], [0, 1, 0, 1, 0, 1])
    np.testing.assert_array_equal(dump['camids'], [0, 1, 2, 0, 1, 2])
    assert list(dump['splits']) == ['query'] * 2 + ['gallery'] * 4
    np.testing.assert_array_equal(dump['query_index'], [0, 1])
    # Queries in the gallery by default: the whole test set.
    np.testing.assert_array_equal(dump['gallery_index'], np.arange(6))
    np.testing.assert_array_equal(dump['tracklet_ids'], np.arange(6))
    expected = compute_distance_matrix(
        torch.from_numpy(dump['features'][:2]),
        torch.from_numpy(dump['features'])).numpy()
    np.testing.assert_array_equal(dump['distmat'], expected)
    offsets = dump['frame_path_offsets']
    assert list(dump['frame_paths'][offsets[3]:offsets[4]]) == [
        f'/data/3/{j}.jpg' for j in range(4)
    ]
    protocol = json.loads(str(dump['protocol']))
    assert protocol['query_in_gallery'] is True
    assert protocol['num_gallery'] == 6
    # Per-query results, in the order of query_index.
    per_query = evaluate_rank_per_query(dump['distmat'], [0, 1], dump['pids'],
                                        [0, 1], dump['camids'])
    np.testing.assert_array_equal(dump['query_ap'], per_query.ap)
    np.testing.assert_array_equal(dump['query_inp'], per_query.inp)
    np.testing.assert_array_equal(dump['query_first_match'],
                                  per_query.first_match)
    np.testing.assert_array_equal(dump['query_num_matches'], [2, 2])


def test_dump_per_query_of_the_hand_worked_example(tmp_path):
    path = tmp_path / 'hand.npz'
    run(
        ReIDMetric(
            feat_norm=False, query_in_gallery=False, dump_path=str(path)),
        hand_samples())
    dump = np.load(path, allow_pickle=False)
    # A, B, D of test_hand_worked_both_protocols; D has no true match.
    np.testing.assert_allclose(dump['query_ap'], [1, 0.75, np.nan])
    np.testing.assert_allclose(dump['query_inp'], [1, 0.5, np.nan])
    np.testing.assert_array_equal(dump['query_first_match'], [0, 0, -1])
    np.testing.assert_array_equal(dump['query_num_matches'], [1, 2, 0])


@pytest.mark.parametrize('bad', [float('nan'), float('inf')])
def test_non_finite_features_are_refused(bad):
    samples = hand_samples()
    samples[1].pred_feature = torch.tensor([bad, 0.0])
    samples[4].pred_feature = torch.tensor([0.0, bad])
    with pytest.raises(ValueError) as error:
        run(ReIDMetric(), samples)
    message = str(error.value)
    assert ('2 of 7 tracklet embeddings hold NaN or inf (1 queries, 1 '
            'gallery tracklets)') in message
    assert "data sample 1, split 'query', tracklet_id 1" in message
    assert "data sample 4, split 'gallery', tracklet_id 4" in message


def test_non_finite_distances_are_refused():
    # Finite features whose squared distances overflow float32.
    samples = hand_samples()
    samples[3].pred_feature = torch.tensor([3e38, 0.0])
    with pytest.raises(
            ValueError, match='NaN or infinite distances, in 3 '
            'of 3 query rows'):
        run(ReIDMetric(feat_norm=False, query_in_gallery=False), samples)


def test_errors():
    good = hand_samples()
    with pytest.raises(ValueError, match='no query samples'):
        run(ReIDMetric(), [s for s in good if s.split == 'gallery'])
    with pytest.raises(ValueError, match='no gallery samples'):
        run(ReIDMetric(), [s for s in good if s.split == 'query'])
    per_frame = make_sample([0, 1], 1, 0, 'query', tracklet_id=5)
    per_frame.camid = torch.zeros(8, dtype=torch.int64)
    with pytest.raises(ValueError, match='tracklet_id 5.*one camera id'):
        ReIDMetric().process(None, [per_frame])
    clips = make_sample(torch.ones(3, 2), 1, 0, 'query')
    with pytest.raises(ValueError, match='1-D tracklet embedding'):
        ReIDMetric().process(None, [clips])
    wrong_split = make_sample([0, 1], 1, 0, 'train')
    with pytest.raises(ValueError, match="split must be one of"):
        ReIDMetric().process(None, [wrong_split])
    missing = DataSample(metainfo=dict(split='query')).set_gt_label(1)
    with pytest.raises(KeyError, match='pred_feature'):
        ReIDMetric().process(None, [missing])
    mixed = good[:3] + [make_sample([1, 2, 3], 1, 1, 'gallery')]
    with pytest.raises(ValueError, match='differ in length'):
        run(ReIDMetric(), mixed)
    with pytest.raises(ValueError, match='dist_metric'):
        ReIDMetric(dist_metric='l1')
    with pytest.raises(ValueError, match='topk'):
        ReIDMetric(topk=(0, 5))
    with pytest.raises(ValueError, match='k1'):
        ReIDMetric(k1=0)
    with pytest.raises(ValueError, match='lambda_value'):
        ReIDMetric(lambda_value=2)
    with pytest.raises(ValueError, match='.npz'):
        ReIDMetric(dump_path='features.pkl')


def test_sampling_in_the_protocol_line():
    samples = hand_samples()
    for i, sample in enumerate(samples):
        sample.set_metainfo(
            dict(sample_mode='dense', clip_len=8, num_clips=1 + i % 3))
    with mock.patch(
            'mmtfclip.evaluation.metrics.reid_metric.print_log') as log:
        run(ReIDMetric(), samples)
    assert ('sampling = dense, T=8, 1-3 clips per tracklet (mean 1.9)'
            in log.call_args_list[0].args[0])


def test_packed_samples_name_their_sampling_mode():
    # Through the real packing transform: the line says dense or rrs.
    for mode in ('dense', 'rrs'):
        samples = []
        for i, sample in enumerate(hand_samples()):
            packed = PackTrackletInputs()(dict(
                imgs=np.zeros((4, 2, 2, 3), np.uint8),
                frame_paths=[f'{i}/{j}.jpg' for j in range(4)],
                frame_inds=np.arange(4),
                pid=int(sample.gt_label),
                camid=int(sample.camid),
                split=sample.split,
                tracklet_id=i,
                sample_mode=mode,
                clip_len=4,
                num_clips=1))['data_samples']
            packed.set_field(sample.pred_feature, 'pred_feature')
            samples.append(packed)
        with mock.patch(
                'mmtfclip.evaluation.metrics.reid_metric.print_log') as log:
            run(ReIDMetric(), samples)
        assert (f'sampling = {mode}, T=4, 1-1 clips per tracklet'
                in log.call_args_list[0].args[0])


def test_select_on_test_config_uses_the_authors_criterion():
    """Their best epoch maximises cmc[0] + mAP
    (processor/processor_clipreid_stage2.py), evaluated every 2 epochs."""
    import os.path as osp

    from mmengine.config import Config
    repo = osp.dirname(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    cfg = Config.fromfile(
        osp.join(
            repo, 'configs', 'tfclip',
            'tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e-select-on-test_'
            'mars.py'))
    checkpoint = cfg.default_hooks.checkpoint
    assert checkpoint.save_best == 'reid/mAP+rank1'
    assert checkpoint.rule == 'greater'
    assert cfg.train_cfg.val_interval == 2
    # A's matches at ranks 3 and 4 (AP 5/12), B's at rank 1 (AP 1).
    rows = [([0, 0], 1, 0, 'query'), ([0, 0], 2, 0, 'query'),
            ([1, 0], 2, 1, 'gallery'), ([1.5, 0], 1, 1, 'gallery'),
            ([5, 0], 1, 1, 'gallery'), ([1.2, 0], 9, 1, 'gallery')]
    samples = [make_sample(f, p, c, s) for f, p, c, s in rows]
    metrics = run(ReIDMetric(feat_norm=False, query_in_gallery=False), samples)
    assert metrics['reid/mAP+rank1'] == pytest.approx(metrics['reid/mAP'] +
                                                      metrics['reid/rank1'])
    assert metrics['reid/rank1'] == 50.0
    assert metrics['reid/mAP+rank1'] == pytest.approx(
        50 + 100 * 17 / 24, abs=1e-4)
