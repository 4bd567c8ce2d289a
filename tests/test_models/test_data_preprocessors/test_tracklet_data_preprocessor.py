# Copyright (c) mmtfclip contributors. All rights reserved.
import pytest
import torch
from mmpretrain.structures import DataSample

from mmtfclip.models.data_preprocessors import TrackletDataPreprocessor
from mmtfclip.registry import MODELS


def test_default_is_imagenet_normalisation():
    pre = MODELS.build(dict(type='TrackletDataPreprocessor'))
    frames = [
        torch.randint(0, 256, (4, 3, 8, 6), dtype=torch.uint8)
        for _ in range(2)
    ]
    out = pre(dict(inputs=frames, data_samples=None))['inputs']
    assert out.shape == (2, 4, 3, 8, 6) and out.dtype == torch.float32
    # The authors: ToTensor (x / 255), then Normalize with ImageNet's stats.
    mean = torch.tensor([0.485, 0.456, 0.406]).view(3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(3, 1, 1)
    expected = (torch.stack(frames).float() / 255 - mean) / std
    torch.testing.assert_close(out, expected)
    # mean / std are buffers that do not go into checkpoints.
    assert 'mean' in dict(pre.named_buffers())
    assert pre.state_dict() == {}


def test_dense_clips_custom_stats_and_bf16():
    pre = TrackletDataPreprocessor(
        mean=(0., 0., 0.), std=(255., 255., 255.), dtype='bf16')
    dense = [torch.full((3, 2, 3, 4, 4), 255, dtype=torch.uint8)]
    samples = ['sample']
    out = pre(dict(inputs=dense, data_samples=samples))
    assert out['inputs'].shape == (1, 3, 2, 3, 4, 4)
    assert out['inputs'].dtype == torch.bfloat16
    assert (out['inputs'] == 1).all()
    assert out['data_samples'] == samples


def test_dense_clips_of_different_counts_are_concatenated():
    pre = TrackletDataPreprocessor(dtype='bf16')
    dense = [
        torch.randint(0, 256, (n, 2, 3, 4, 4), dtype=torch.uint8)
        for n in (2, 1, 3)
    ]
    samples = [DataSample() for _ in dense]
    out = pre(dict(inputs=dense, data_samples=samples))
    assert out['inputs'].shape == (6, 2, 3, 4, 4)
    assert out['inputs'].dtype == torch.bfloat16
    assert [s.num_clips for s in out['data_samples']] == [2, 1, 3]
    # The same numbers as each tracklet on its own.
    for i, clips in enumerate(out['inputs'].split([2, 1, 3])):
        alone = pre(dict(inputs=[dense[i]], data_samples=[DataSample()]))
        torch.testing.assert_close(clips, alone['inputs'][0], rtol=0, atol=0)
    # A batch of equal N keeps one dimension per tracklet.
    same = pre(dict(inputs=dense[:1] * 2, data_samples=samples[:2]))
    assert same['inputs'].shape == (2, 2, 2, 3, 4, 4)


def test_errors():
    pre = TrackletDataPreprocessor()
    mixed = [
        torch.zeros(2, 2, 3, 4, 4, dtype=torch.uint8),
        torch.zeros(3, 2, 3, 4, 4, dtype=torch.uint8)
    ]
    with pytest.raises(ValueError, match='needs one data sample'):
        pre(dict(inputs=mixed))
    with pytest.raises(ValueError, match='may differ, in N'):
        pre(
            dict(
                inputs=[
                    mixed[0],
                    torch.zeros(2, 2, 3, 4, 5, dtype=torch.uint8)
                ],
                data_samples=[DataSample(), DataSample()]))
    with pytest.raises(ValueError, match='may differ, in N'):
        pre(
            dict(
                inputs=[
                    torch.zeros(2, 3, 4, 4, dtype=torch.uint8),
                    torch.zeros(3, 3, 4, 4, dtype=torch.uint8)
                ],
                data_samples=[DataSample(), DataSample()]))
    with pytest.raises(ValueError, match='RGB clips'):
        pre(dict(inputs=[torch.zeros(2, 1, 4, 4, dtype=torch.uint8)]))
    with pytest.raises(ValueError, match='one value per RGB'):
        TrackletDataPreprocessor(mean=(1., 2.))
    with pytest.raises(ValueError, match='dtype'):
        TrackletDataPreprocessor(dtype='int8')
