# Copyright (c) mmtfclip contributors. All rights reserved.
import torch

from mmtfclip.models.necks import TemporalAvgPool


def test_avg_pool_is_the_token_then_frame_mean():
    neck = TemporalAvgPool(embed_dims=8, num_frames=4)
    assert not list(neck.parameters())
    x = torch.randn(2, 4, 6, 8)
    frame_feats, seq_feats = neck(x)
    torch.testing.assert_close(frame_feats, x.mean(dim=2))
    torch.testing.assert_close(seq_feats, x.mean(dim=(1, 2)))
