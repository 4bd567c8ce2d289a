# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model.weight_init import trunc_normal_
from open_clip.transformer import QuickGELU, ResidualAttentionBlock

from mmtfclip.registry import MODELS
from .base_temporal_neck import BaseTemporalNeck


@MODELS.register_module()
class TemporalTransformer(BaseTemporalNeck):
    """A transformer over the frames of a clip.

    A frame's input feature is the mean of its encoder tokens (as for
    :class:`TemporalAvgPool`); a learned temporal position embedding is
    added and CLIP-style pre-norm transformer blocks (QuickGELU MLP) let the
    T frame features attend to each other. The frame features are the
    blocks' outputs; the sequence feature is their mean or, with
    ``with_cls_token``, the output of a learned class token prepended to
    the frames.

    These are the "Transf" and "Transf_cls" rows of the temporal fusion
    comparison (TF-CLIP supplement, Table 5). The authors' versions run 6
    blocks on the 512-d projected class tokens; here the blocks work on the
    768-d encoder tokens, like TMD, so that only the fusion changes.

    Args:
        embed_dims (int): Channels of the encoder tokens. Defaults to 768.
        num_layers (int): Transformer blocks. Defaults to 1.
        num_heads (int): Attention heads. Defaults to 12.
        num_frames (int): Frames per clip (T); inputs with another T are
            refused, and the position embedding has T (+ 1) entries.
            Defaults to 8.
        mlp_ratio (float): MLP width ratio. Defaults to 4.0.
        with_cls_token (bool): Take the sequence feature from a learned
            class token instead of the mean over frames. Defaults to False.
        detach_input (bool): Detach the encoder tokens. Defaults to True.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 embed_dims: int = 768,
                 num_layers: int = 1,
                 num_heads: int = 12,
                 num_frames: int = 8,
                 mlp_ratio: float = 4.0,
                 with_cls_token: bool = False,
                 detach_input: bool = True,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(
            embed_dims=embed_dims,
            num_frames=num_frames,
            detach_input=detach_input,
            init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}.')
        if embed_dims % num_heads:
            raise ValueError(f'num_heads ({num_heads}) must divide '
                             f'embed_dims ({embed_dims}).')
        self.with_cls_token = with_cls_token
        if with_cls_token:
            self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dims))
            trunc_normal_(self.cls_token, std=0.02)
        self.pos_embed = nn.Parameter(
            torch.zeros(1, num_frames + int(with_cls_token), embed_dims))
        trunc_normal_(self.pos_embed, std=0.02)
        self.blocks = nn.ModuleList([
            ResidualAttentionBlock(
                embed_dims,
                num_heads,
                mlp_ratio=mlp_ratio,
                act_layer=QuickGELU,
                batch_first=True) for _ in range(num_layers)
        ])

    def fuse(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frame and sequence features of tokens ``[B, T, L, C]``."""
        x = x.mean(dim=2)
        if self.with_cls_token:
            x = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), x],
                          dim=1)
        x = x + self.pos_embed
        for block in self.blocks:
            x = block(x)
        if self.with_cls_token:
            return x[:, 1:], x[:, 0]
        return x, x.mean(dim=1)
