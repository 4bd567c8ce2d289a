# Copyright (c) mmtfclip contributors. All rights reserved.
from collections import OrderedDict
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from open_clip.transformer import QuickGELU
from torchvision.ops import StochasticDepth

from mmtfclip.registry import MODELS
from ..utils import MultiheadAttention


class TMDLayer(nn.Module):
    """One Temporal Memory Diffusion layer: TMC followed by MD.

    TMC (temporal memory construction): each frame gets a message token, a
    linear layer applied to the mean of the frame's tokens; the T message
    tokens of a sequence attend to each other (pre-norm, residual). MD
    (memory diffusion): each frame's message token is appended to that
    frame's tokens, which then go through pre-norm self-attention and an
    MLP with residuals. The layer returns one token more per frame.

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        mlp_ratio (float): MLP width ratio. Defaults to 4.0.
        drop_path (float): Stochastic depth rate on the residual branches.
            Defaults to 0.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.0,
                 drop_path: float = 0.) -> None:
        super().__init__()
        hidden = int(embed_dims * mlp_ratio)
        self.message_fc = nn.Linear(embed_dims, embed_dims)
        self.message_norm = nn.LayerNorm(embed_dims)
        self.message_attn = MultiheadAttention(embed_dims, num_heads)
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
            Tensor: ``[B, T, L + 1, C]``, the message token last.
        """
        batch, frames, length, channels = x.shape
        message = self.message_fc(x.mean(dim=2))
        message = message + self.drop_path(
            self.message_attn(self.message_norm(message)))
        x = torch.cat([x, message.unsqueeze(2)], dim=2)
        x = x.view(batch * frames, length + 1, channels)
        x = x + self.drop_path(self.attn(self.norm1(x)))
        x = x + self.drop_path(self.mlp(self.norm2(x)))
        return x.view(batch, frames, length + 1, channels)


@MODELS.register_module()
class TemporalMemoryDiffusion(BaseModule):
    """TMD of TF-CLIP: temporal modelling on the image encoder's tokens.

    Each layer (:class:`TMDLayer`) builds one message token per frame, lets
    the message tokens of a sequence exchange information (TMC) and appends
    them to their frames for a self-attention + MLP block (MD). A frame's
    feature is the mean of all its tokens, the appended message tokens
    included; the sequence feature is the mean over frames. As in the
    authors' code the input tokens are detached by default, so the temporal
    branch does not train the encoder.

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
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}.')
        self.embed_dims = embed_dims
        self.num_frames = num_frames
        self.detach_input = detach_input
        rates = torch.linspace(0, drop_path_rate, num_layers).tolist()
        self.layers = nn.ModuleList([
            TMDLayer(embed_dims, num_heads, mlp_ratio, rate) for rate in rates
        ])

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Compute frame and sequence features.

        Args:
            x (Tensor): Encoder tokens ``[B, T, L, C]`` (after the encoder's
                final LayerNorm).

        Returns:
            tuple[Tensor, Tensor]: Frame features ``[B, T, C]`` and sequence
            features ``[B, C]``.
        """
        if x.dim() != 4 or x.shape[-1] != self.embed_dims:
            raise ValueError(
                'TemporalMemoryDiffusion expects tokens [B, T, L, '
                f'{self.embed_dims}], got {tuple(x.shape)}.')
        if x.shape[1] != self.num_frames:
            raise ValueError(
                f'TemporalMemoryDiffusion got clips of {x.shape[1]} frames '
                f'but model.neck.num_frames={self.num_frames}: the frame '
                'sampler of the pipeline must give the same T.')
        if self.detach_input:
            x = x.detach()
        for layer in self.layers:
            x = layer(x)
        frame_feats = x.mean(dim=2)
        return frame_feats, frame_feats.mean(dim=1)
