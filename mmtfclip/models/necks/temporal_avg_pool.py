# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Tuple

import torch

from mmtfclip.registry import MODELS
from .base_temporal_neck import BaseTemporalNeck


@MODELS.register_module()
class TemporalAvgPool(BaseTemporalNeck):
    """Temporal average pooling (TAP), the parameter-free temporal neck.

    A frame's feature is the mean of its encoder tokens, as in
    :class:`TemporalMemoryDiffusion` without any temporal interaction; the
    sequence feature is the mean over frames. It is the "TAP" row of the
    temporal fusion comparison (TF-CLIP supplement, Table 5) with the
    temporal branch of the head kept, so that the comparison with the other
    necks changes the fusion only.

    Args:
        embed_dims (int): Channels of the encoder tokens. Defaults to 768.
        num_frames (int): Frames per clip (T); inputs with another T are
            refused. Defaults to 8.
        detach_input (bool): Detach the encoder tokens. Defaults to True.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def fuse(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frame and sequence features of tokens ``[B, T, L, C]``."""
        frame_feats = x.mean(dim=2)
        return frame_feats, frame_feats.mean(dim=1)
