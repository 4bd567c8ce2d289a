# Copyright (c) mmtfclip contributors. All rights reserved.
import pytest
import torch

from mmtfclip.models.necks import TemporalTransformer


def test_transformer_without_position_is_frame_equivariant():
    """Attention over the frames: with the position embedding zeroed,
    permuting the frames permutes the frame features, and the mean over
    frames (the sequence feature) does not change."""
    torch.manual_seed(0)
    neck = TemporalTransformer(
        embed_dims=16, num_layers=2, num_heads=2, num_frames=4).eval()
    assert neck.pos_embed.shape == (1, 4, 16)
    x = torch.randn(2, 4, 3, 16)
    with_position = neck(x)[0]
    torch.nn.init.zeros_(neck.pos_embed)
    order = torch.tensor([2, 0, 3, 1])
    frames, seq = neck(x)
    frames_perm, seq_perm = neck(x[:, order])
    torch.testing.assert_close(frames_perm, frames[:, order])
    torch.testing.assert_close(seq_perm, seq)
    torch.testing.assert_close(seq, frames.mean(dim=1))
    assert not torch.allclose(with_position, frames)


def test_transformer_cls_token_gives_the_sequence_feature():
    torch.manual_seed(0)
    neck = TemporalTransformer(
        embed_dims=16, num_heads=2, num_frames=4, with_cls_token=True)
    assert neck.cls_token.shape == (1, 1, 16)
    assert neck.pos_embed.shape == (1, 5, 16)
    frames, seq = neck(torch.randn(2, 4, 3, 16))
    assert frames.shape == (2, 4, 16) and seq.shape == (2, 16)
    assert not torch.allclose(seq, frames.mean(dim=1))


def test_transformer_refuses_bad_sizes():
    with pytest.raises(ValueError, match='must divide'):
        TemporalTransformer(embed_dims=10, num_heads=4)
    with pytest.raises(ValueError, match='num_layers'):
        TemporalTransformer(embed_dims=8, num_heads=2, num_layers=0)
