# Copyright (c) mmtfclip contributors. All rights reserved.
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from open_clip.transformer import QuickGELU
from torchvision.ops import StochasticDepth

from mmtfclip.registry import MODELS
from ..utils import MultiheadAttention
from .base_temporal_neck import BaseTemporalNeck


class TMDLayer(nn.Module):
    """One Temporal Memory Diffusion layer: TMC followed by MD.

    TMC (temporal memory construction): each frame gets a message token, a
    linear layer applied to the mean of the frame's tokens; the T message
    tokens of a sequence attend to each other (pre-norm, residual). MD
    (memory diffusion): each frame's message token is appended to that
    frame's tokens, which then go through pre-norm self-attention and an
    MLP with residuals. The layer returns one token more per frame.

    For the ablations of the supplement (Table 3) either part can be
    switched off; the modules of a part that is off are not built, so the
    parameter count is that of the ablated model. Without TMC the message
    tokens are made but do not attend to each other; without MD they are
    appended to their frames' tokens but not diffused into them (no
    self-attention, no MLP).

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP width ratio. Defaults to 4.0.
        drop_path (float): Stochastic depth rate on the residual branches.
            Defaults to 0.
        with_tmc (bool): Let the message tokens attend to each other.
            Defaults to True.
        with_md (bool): Diffuse the message tokens into the frames' tokens.
            Defaults to True.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.0,
                 drop_path: float = 0.,
                 with_tmc: bool = True,
                 with_md: bool = True) -> None:
        super().__init__()
        if not (with_tmc or with_md):
            raise ValueError(
                'with_tmc=False and with_md=False leave TMD without any '
                'temporal modelling; for that ablation use model.neck=None '
                "(with head.with_temporal=False) or type='TemporalAvgPool'.")
        self.with_tmc = with_tmc
        self.with_md = with_md
        hidden = int(embed_dims * mlp_ratio)
        # Built in the same order as ever, so that the default layer draws
        # the same initial weights from a seeded generator.
        self.message_fc = nn.Linear(embed_dims, embed_dims)
        if with_tmc:
            self.message_norm = nn.LayerNorm(embed_dims)
            self.message_attn = MultiheadAttention(embed_dims, num_heads)
        if with_md:
            self.norm1 = nn.LayerNorm(embed_dims)
            self.attn = MultiheadAttention(embed_dims, num_heads)
            self.norm2 = nn.LayerNorm(embed_dims)
            self.mlp = nn.Sequential(
                OrderedDict([('fc1', nn.Linear(embed_dims, hidden)),
                             ('act', QuickGELU()),
                             ('fc2', nn.Linear(hidden, embed_dims))]))
        self.drop_path = (
            StochasticDepth(drop_path, mode='row')
            if drop_path > 0 else nn.Identity())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Diffuse temporal memory into the frames' tokens.

        Args:
            x (Tensor): Tokens ``[B, T, L, C]``.

        Returns:
            Tensor: ``[B, T, L + 1, C]``, the message token last (not
            diffused without MD).
        """
        batch, frames, length, channels = x.shape
        message = self.message_fc(x.mean(dim=2))
        if self.with_tmc:
            message = message + self.drop_path(
                self.message_attn(self.message_norm(message)))
        x = torch.cat([x, message.unsqueeze(2)], dim=2)
        if not self.with_md:
            return x
        x = x.view(batch * frames, length + 1, channels)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.view(batch, frames, length + 1, channels)


@MODELS.register_module()
class TemporalMemoryDiffusion(BaseTemporalNeck):
    """TMD of TF-CLIP: temporal modelling on the image encoder's tokens.

    Each layer (:class:`TMDLayer`) builds one message token per frame, lets
    the message tokens of a sequence exchange information (TMC) and appends
    them to their frames for a self-attention + MLP block (MD). A frame's
    feature is the mean of all its tokens, the appended message tokens
    included; the sequence feature is the mean over frames. As in the
    authors' code the input tokens are detached by default, so the temporal
    branch does not train the encoder.

    ``with_tmc`` and ``with_md`` switch the two parts off for the
    supplement's ablation (Table 3). Without MD the message tokens stay
    apart from the frame tokens, and a frame's feature is the mean of its
    encoder tokens plus the mean of its message tokens (one per layer): an
    average over the L + 1 tokens would give the one message token a
    weight of 1 / (L + 1) and all but hide it.

    Args:
        embed_dims (int): Channels of the encoder tokens. Defaults to 768.
        num_layers (int): TMD layers. Defaults to 1.
        num_heads (int): Attention heads. Defaults to 12.
        num_frames (int): Frames per clip (T). Inputs with another T are
            refused, so that a pipeline sampling a different T than the
            model was configured for fails early. Defaults to 8.
        mlp_ratio (float): MLP width ratio. Defaults to 4.0.
        drop_path_rate (float): Stochastic depth, increasing linearly over
            the layers up to this rate. Defaults to 0.
        detach_input (bool): Detach the encoder tokens. Defaults to True.
        with_tmc (bool): Temporal memory construction: the message tokens
            attend to each other. Defaults to True.
        with_md (bool): Memory diffusion: the message tokens are diffused
            into their frames' tokens. Defaults to True.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 embed_dims: int = 768,
                 num_layers: int = 1,
                 num_heads: int = 12,
                 num_frames: int = 8,
                 mlp_ratio: float = 4.0,
                 drop_path_rate: float = 0.,
                 detach_input: bool = True,
                 with_tmc: bool = True,
                 with_md: bool = True,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(
            embed_dims=embed_dims,
            num_frames=num_frames,
            detach_input=detach_input,
            init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}.')
        self.with_tmc = with_tmc
        self.with_md = with_md
        rates = torch.linspace(0, drop_path_rate, num_layers).tolist()
        self.layers = nn.ModuleList([
            TMDLayer(embed_dims, num_heads, mlp_ratio, rate, with_tmc, with_md)
            for rate in rates
        ])

    def fuse(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frame and sequence features of tokens ``[B, T, L, C]``."""
        length = x.shape[2]
        for layer in self.layers:
            x = layer(x)
        if self.with_md:
            frame_feats = x.mean(dim=2)
        else:
            tokens, messages = x[:, :, :length], x[:, :, length:]
            frame_feats = tokens.mean(dim=2) + messages.mean(dim=2)
        return frame_feats, frame_feats.mean(dim=1)
