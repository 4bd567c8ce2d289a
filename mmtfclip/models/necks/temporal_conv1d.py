# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn

from mmtfclip.registry import MODELS
from .base_temporal_neck import BaseTemporalNeck


@MODELS.register_module()
class TemporalConv1d(BaseTemporalNeck):
    """1-D temporal convolution over the frame features.

    A frame's input feature is the mean of its encoder tokens (as for
    :class:`TemporalAvgPool`); a depth-wise 1-D convolution over time, with
    zero padding at the ends of the clip, is added to it as a residual, and
    the sequence feature is the mean over frames.

    The kernel starts as a temporal shift (Lin et al., TSM, ICCV 2019): a
    quarter of the channels reads the previous frame, a quarter the next
    one, the rest the frame itself. The neck thus mixes neighbouring frames
    from the first step, and training adapts the mixing per channel. The
    authors' 1-D convolution of the temporal fusion comparison (TF-CLIP
    supplement, Table 5) is such a shift-initialised depth-wise kernel of
    size 3 applied to the 512-d projected class tokens; here it works on
    the 768-d encoder tokens, like TMD, so that only the fusion changes.

    Args:
        embed_dims (int): Channels of the encoder tokens. Defaults to 768.
        num_frames (int): Frames per clip (T); inputs with another T are
            refused. Defaults to 8.
        kernel_size (int): Temporal extent of the kernel, odd and >= 3.
            Defaults to 3.
        detach_input (bool): Detach the encoder tokens. Defaults to True.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 embed_dims: int = 768,
                 num_frames: int = 8,
                 kernel_size: int = 3,
                 detach_input: bool = True,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(
            embed_dims=embed_dims,
            num_frames=num_frames,
            detach_input=detach_input,
            init_cfg=init_cfg)
        if kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError('kernel_size must be odd and >= 3 (the output '
                             'keeps T frames and each frame sees its '
                             f'neighbours), got {kernel_size}.')
        self.kernel_size = kernel_size
        self.conv = nn.Conv1d(
            embed_dims,
            embed_dims,
            kernel_size,
            padding=kernel_size // 2,
            groups=embed_dims,
            bias=False)
        self._init_as_shift()

    def _init_as_shift(self) -> None:
        centre = self.kernel_size // 2
        quarter = self.embed_dims // 4
        weight = torch.zeros_like(self.conv.weight)
        # Cross-correlation: tap centre - 1 reads frame t - 1.
        weight[:quarter, 0, centre - 1] = 1.
        weight[quarter:2 * quarter, 0, centre + 1] = 1.
        weight[2 * quarter:, 0, centre] = 1.
        with torch.no_grad():
            self.conv.weight.copy_(weight)

    def fuse(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frame and sequence features of tokens ``[B, T, L, C]``."""
        frames = x.mean(dim=2)
        mixed = self.conv(frames.transpose(1, 2)).transpose(1, 2)
        frame_feats = frames + mixed
        return frame_feats, frame_feats.mean(dim=1)
