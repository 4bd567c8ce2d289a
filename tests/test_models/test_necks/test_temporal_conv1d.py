# Copyright (c) mmtfclip contributors. All rights reserved.
import pytest
import torch

from mmtfclip.models.necks import TemporalConv1d


def test_conv1d_starts_as_a_temporal_shift_with_residual():
    """A quarter of the channels adds the previous frame, a quarter the next
    one (zeros beyond the clip), the rest the frame itself."""
    neck = TemporalConv1d(embed_dims=8, num_frames=3)
    x = torch.randn(2, 3, 5, 8)
    f = x.mean(dim=2)
    zero = torch.zeros_like(f[:, :1])
    previous = torch.cat([zero, f[:, :-1]], dim=1)
    following = torch.cat([f[:, 1:], zero], dim=1)
    expected = f.clone()
    expected[..., :2] += previous[..., :2]
    expected[..., 2:4] += following[..., 2:4]
    expected[..., 4:] += f[..., 4:]
    frame_feats, seq_feats = neck(x)
    torch.testing.assert_close(frame_feats, expected)
    torch.testing.assert_close(seq_feats, expected.mean(dim=1))


def test_conv1d_is_depthwise_and_learned():
    neck = TemporalConv1d(embed_dims=8, num_frames=3, kernel_size=5)
    assert neck.conv.weight.shape == (8, 1, 5)
    assert neck.conv.padding == (2, )
    x = torch.randn(1, 3, 4, 8)
    before = neck(x)[0]
    with torch.no_grad():
        neck.conv.weight.mul_(0.5)
    assert not torch.allclose(neck(x)[0], before)


@pytest.mark.parametrize('kernel_size', [1, 2, 4])
def test_conv1d_refuses_kernels_without_both_neighbours(kernel_size):
    with pytest.raises(ValueError, match='kernel_size must be odd'):
        TemporalConv1d(embed_dims=8, num_frames=3, kernel_size=kernel_size)
