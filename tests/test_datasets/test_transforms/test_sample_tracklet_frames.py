# Copyright (c) mmtfclip contributors. All rights reserved.
import math

import numpy as np
import pytest

from mmtfclip.datasets.transforms import SampleTrackletFrames


def _sample(num, **kwargs):
    results = dict(frame_paths=[f'{i}.jpg' for i in range(num)])
    return SampleTrackletFrames(**kwargs)(results)


def _authors_chunks(num, seq_len):
    """Their VideoDataset's chunks (datasets/video_loader_xh.py), read
    independently: the frames padded with the last one to a strip of
    seq_len * ceil(num / seq_len), cut into seq_len pieces."""
    per_chunk = 1 if num < seq_len else math.ceil(num / seq_len)
    strip = list(range(num)) + [num - 1] * (per_chunk * seq_len - num)
    return np.array(
        [strip[per_chunk * s:per_chunk * (s + 1)] for s in range(seq_len)])


def _authors_dense(num, seq_len):
    """Their 'dense' clips: consecutive clips while more than seq_len
    frames are left, the rest cycled to seq_len."""
    clips, cur = [], 0
    while num - cur > seq_len:
        clips.append(list(range(cur, cur + seq_len)))
        cur += seq_len
    last = list(range(cur, num))
    clips.append([last[i % len(last)] for i in range(seq_len)])
    return clips


@pytest.mark.parametrize('clip_len', [4, 8])
def test_rrs_picks_the_authors_frames_for_1_to_120_frames(clip_len):
    for num in range(1, 121):
        chunks = _authors_chunks(num, clip_len)
        # Validation ('rrs_test'): the first frame of each chunk.
        out = _sample(num, clip_len=clip_len, mode='rrs', test_mode=True)
        assert out['frame_inds'].tolist() == chunks[:, 0].tolist(), num
        # Training ('rrs_train'): one uniform draw per chunk; the same
        # numpy draws give the same frames.
        for seed in range(3):
            np.random.seed(seed)
            pick = np.random.choice(chunks.shape[1], chunks.shape[0])
            theirs = chunks[np.arange(clip_len), pick]
            np.random.seed(seed)
            ours = _sample(num, clip_len=clip_len, mode='rrs')['frame_inds']
            assert ours.tolist() == theirs.tolist(), (num, seed)
    assert _sample(
        3, clip_len=8, mode='rrs',
        test_mode=True)['frame_inds'].tolist() == [0, 1, 2, 2, 2, 2, 2, 2]
    assert _sample(
        9, clip_len=8, mode='rrs',
        test_mode=True)['frame_inds'].tolist() == [0, 2, 4, 6, 8, 8, 8, 8]


@pytest.mark.parametrize('clip_len', [4, 8])
def test_dense_picks_the_authors_frames_for_1_to_120_frames(clip_len):
    for num in range(1, 121):
        out = _sample(num, clip_len=clip_len, mode='dense', test_mode=True)
        theirs = _authors_dense(num, clip_len)
        assert out['num_clips'] == len(theirs)
        assert out['frame_inds'].reshape(-1, clip_len).tolist() == theirs


def test_rrs_test_mode_takes_the_first_frame_of_equal_chunks():
    out = _sample(20, clip_len=4, mode='rrs', test_mode=True, chunks='equal')
    assert out['frame_inds'].tolist() == [0, 5, 10, 15]
    assert out['num_clips'] == 1 and out['clip_len'] == 4
    assert out['total_frames'] == 20 and out['sample_mode'] == 'rrs'
    # Chunks of 3 or 2 frames when n does not divide: 0-2, 3-4, 5-7, 8-9.
    out = _sample(10, clip_len=4, mode='rrs', test_mode=True, chunks='equal')
    assert out['frame_inds'].tolist() == [0, 2, 5, 7]
    # Fewer frames than T: repeated in order.
    out = _sample(3, clip_len=8, mode='rrs', test_mode=True, chunks='equal')
    assert out['frame_inds'].tolist() == [0, 0, 0, 1, 1, 1, 2, 2]


def test_rrs_training_draws_one_frame_in_each_equal_chunk():
    np.random.seed(0)
    seen = np.zeros((4, 10), dtype=bool)
    edges = [0, 2, 5, 7, 10]
    for _ in range(300):
        inds = _sample(
            10, clip_len=4, mode='rrs', chunks='equal')['frame_inds']
        for k, i in enumerate(inds):
            assert edges[k] <= i < edges[k + 1]
            seen[k, i] = True
    # Every frame of every chunk is reachable.
    assert seen.sum() == 10
    assert _sample(
        3, clip_len=8, mode='rrs',
        chunks='equal')['frame_inds'].tolist() == [0, 0, 0, 1, 1, 1, 2, 2]


def test_dense_covers_every_frame_and_pads_the_last_clip():
    out = _sample(26, clip_len=8, mode='dense', test_mode=True)
    assert out['num_clips'] == 4
    inds = out['frame_inds'].reshape(4, 8)
    assert inds[:3].ravel().tolist() == list(range(24))
    assert inds[3].tolist() == [24, 25, 24, 25, 24, 25, 24, 25]
    out = _sample(16, clip_len=8, mode='dense')
    assert out['frame_inds'].tolist() == list(range(16))
    out = _sample(3, clip_len=8, mode='dense')
    assert out['frame_inds'].tolist() == [0, 1, 2, 0, 1, 2, 0, 1]
    assert out['num_clips'] == 1


def test_random_consecutive_frames():
    np.random.seed(1)
    starts = set()
    for _ in range(200):
        inds = _sample(12, clip_len=8, mode='random')['frame_inds']
        assert (np.diff(inds) == 1).all()
        starts.add(int(inds[0]))
    assert starts == set(range(5))
    assert _sample(
        12, clip_len=8, mode='random',
        test_mode=True)['frame_inds'].tolist() == list(range(2, 10))
    assert _sample(
        3, clip_len=5,
        mode='random')['frame_inds'].tolist() == [0, 1, 2, 0, 1]


def test_evenly_spans_first_to_last():
    assert _sample(
        15, clip_len=8,
        mode='evenly')['frame_inds'].tolist() == [0, 2, 4, 6, 8, 10, 12, 14]
    assert _sample(
        1, clip_len=3, mode='evenly')['frame_inds'].tolist() == [0, 0, 0]


def test_bad_arguments_and_empty_tracklet():
    with pytest.raises(ValueError, match='mode'):
        SampleTrackletFrames(mode='uniform')
    with pytest.raises(ValueError, match='chunks'):
        SampleTrackletFrames(chunks='even')
    with pytest.raises(ValueError, match='clip_len'):
        SampleTrackletFrames(clip_len=0)
    with pytest.raises(ValueError, match='tracklet 5'):
        SampleTrackletFrames()(dict(frame_paths=[], tracklet_id=5))
    assert 'dense' in repr(SampleTrackletFrames(mode='dense'))


def test_mars_config_samples_the_authors_frames():
    """configs/tfclip_mars.py: training rrs, validation rrs (first frame)
    and dense testing pick the frames of the authors' loaders."""
    import os.path as osp

    from mmengine.config import Config

    from mmtfclip.registry import TRANSFORMS
    repo = osp.dirname(
        osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__)))))
    cfg = Config.fromfile(osp.join(repo, 'configs', 'tfclip_mars.py'))
    train = TRANSFORMS.build(cfg.train_dataloader.dataset.pipeline[0])
    val, test = (
        TRANSFORMS.build(loader.dataset.datasets[0].pipeline[0])
        for loader in (cfg.val_dataloader, cfg.test_dataloader))
    t = cfg.clip_len
    for num in range(1, 121):
        results = dict(frame_paths=[f'{i}.jpg' for i in range(num)])
        chunks = _authors_chunks(num, t)
        np.random.seed(num)
        pick = np.random.choice(chunks.shape[1], chunks.shape[0])
        np.random.seed(num)
        assert train(
            dict(results))['frame_inds'].tolist() == chunks[np.arange(t),
                                                            pick].tolist()
        assert val(dict(results))['frame_inds'].tolist() == chunks[:,
                                                                   0].tolist()
        assert test(dict(results))['frame_inds'].reshape(
            -1, t).tolist() == _authors_dense(num, t)
