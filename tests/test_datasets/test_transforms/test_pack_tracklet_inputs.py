# Copyright (c) mmtfclip contributors. All rights reserved.
import numpy as np
import pytest
import torch
from mmpretrain.structures import DataSample

from mmtfclip.datasets.transforms import PackTrackletInputs


def _results(n, mode, clip_len=4):
    imgs = np.zeros((n, 6, 4, 3), np.uint8)
    imgs[..., 0] = np.arange(n)[:, None, None]
    imgs[..., 2] = 255
    return dict(
        imgs=imgs,
        frame_paths=[f'p{i}.jpg' for i in range(10)],
        frame_inds=np.arange(n) % 10,
        pid=5,
        camid=2,
        tracklet_id=9,
        split='gallery',
        clip_len=clip_len,
        num_clips=n // clip_len,
        sample_mode=mode)


def test_single_clip():
    out = PackTrackletInputs()(_results(4, 'rrs'))
    inputs, sample = out['inputs'], out['data_samples']
    assert inputs.shape == (4, 3, 6, 4) and inputs.dtype == torch.uint8
    assert inputs.is_contiguous()
    assert inputs[:, 0, 0, 0].tolist() == [0, 1, 2, 3]
    assert (inputs[:, 2] == 255).all()
    assert isinstance(sample, DataSample)
    assert sample.gt_label.tolist() == [5]
    assert sample.camid.dtype == torch.int64 and sample.camid.item() == 2
    assert sample.camid.dim() == 0
    assert sample.frame_paths == ['p0.jpg', 'p1.jpg', 'p2.jpg', 'p3.jpg']
    assert sample.tracklet_id == 9 and sample.split == 'gallery'
    # The sampling mode travels to the metric's evaluation line.
    assert sample.sample_mode == 'rrs' and sample.clip_len == 4


def test_dense_clips():
    out = PackTrackletInputs()(_results(12, 'dense'))
    assert out['inputs'].shape == (3, 4, 3, 6, 4)
    assert out['inputs'][2, :, 0, 0, 0].tolist() == [8, 9, 10, 11]
    assert out['data_samples'].num_clips == 3
    assert len(out['data_samples'].frame_paths) == 12
    # One dense clip keeps the clip dimension.
    assert PackTrackletInputs()(_results(4,
                                         'dense'))['inputs'].shape == (1, 4, 3,
                                                                       6, 4)


def test_flipped_view_is_packed_contiguously():
    results = _results(4, 'rrs')
    expected = results['imgs'][:, :, ::-1].copy()
    results['imgs'] = results['imgs'][:, :, ::-1]
    inputs = PackTrackletInputs()(results)['inputs']
    assert (inputs.permute(0, 2, 3, 1).numpy() == expected).all()


def test_incomplete_dense_clip():
    with pytest.raises(ValueError, match='whole clips'):
        PackTrackletInputs()(_results(6, 'dense'))
