# Copyright (c) mmtfclip contributors. All rights reserved.
from collections import OrderedDict
from typing import Dict, List, Optional, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from open_clip.transformer import QuickGELU

from mmtfclip.registry import MODELS
from .attention import MultiheadAttention


class SSPDecoderLayer(nn.Module):
    """One decoder layer of the Sequence-Specific Prompt.

    Pre-norm self-attention among the memory entries, cross-attention from
    the memory to the visual tokens, then an MLP, each with a residual and
    dropout on its output (TF-CLIP's prompt generator layer).

    The memory may come in with a batch of 1 while the visual tokens have a
    batch of B: the first layer's self-attention is the same for every
    sequence then, so it is computed once and expanded before the dropout
    (which stays independent per sequence).

    Args:
        embed_dims (int): Channels.
        num_heads (int): Attention heads.
        mlp_ratio (float): Hidden width of the MLP over ``embed_dims``.
            Defaults to 4.0.
        dropout (float): Dropout on the attention outputs, inside the MLP
            and on its output. Defaults to 0.1.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 mlp_ratio: float = 4.0,
                 dropout: float = 0.1) -> None:
        super().__init__()
        hidden = int(embed_dims * mlp_ratio)
        self.norm1 = nn.LayerNorm(embed_dims)
        self.self_attn = MultiheadAttention(
            embed_dims, num_heads, qkv_bias=False)
        self.norm2 = nn.LayerNorm(embed_dims)
        self.cross_attn = MultiheadAttention(
            embed_dims, num_heads, qkv_bias=False)
        self.norm3 = nn.LayerNorm(embed_dims)
        self.mlp = nn.Sequential(
            OrderedDict([('fc1', nn.Linear(embed_dims, hidden)),
                         ('act', QuickGELU()), ('drop', nn.Dropout(dropout)),
                         ('fc2', nn.Linear(hidden, embed_dims))]))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        """Update the memory with one sequence's visual tokens.

        Args:
            x (Tensor): Memory ``[1 or B, K, C]``.
            visual (Tensor): Visual tokens ``[B, M, C]``.

        Returns:
            Tensor: ``[B, K, C]``.
        """
        batch = visual.shape[0]
        attended = self.self_attn(self.norm1(x))
        x = x + self.dropout(attended.expand(batch, -1, -1))
        x = x + self.dropout(self.cross_attn(self.norm2(x), visual))
        return x + self.dropout(self.mlp(self.norm3(x)))


@MODELS.register_module()
class SequenceSpecificPrompt(BaseModule):
    """SSP of TF-CLIP: adapts the CLIP-Memory to one sequence.

    The memory (one entry per identity) goes through a LayerNorm + linear
    projection, the visual tokens through LayerNorm + linear + LayerNorm;
    ``num_layers`` decoder layers let the memory attend to itself and to
    the visual tokens; a LayerNorm + linear output projection gives the
    prompt, which the caller adds to the memory. Following the authors'
    code, the visual tokens are the sequence's projected tokens averaged
    over frames (``1 + h * w`` of them).

    Args:
        embed_dims (int): Channels of the memory and the visual tokens.
            Defaults to 512.
        num_layers (int): Decoder layers. Defaults to 2.
        num_heads (int, optional): Attention heads; None gives one head per
            64 channels, as the authors. Defaults to None.
        mlp_ratio (float): MLP width ratio. Defaults to 4.0.
        dropout (float): Dropout in the decoder layers. Defaults to 0.1.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 embed_dims: int = 512,
                 num_layers: int = 2,
                 num_heads: Optional[int] = None,
                 mlp_ratio: float = 4.0,
                 dropout: float = 0.1,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_layers < 1:
            raise ValueError(f'num_layers must be >= 1, got {num_layers}.')
        num_heads = num_heads or max(embed_dims // 64, 1)
        self.embed_dims = embed_dims
        self.memory_proj = nn.Sequential(
            nn.LayerNorm(embed_dims), nn.Linear(embed_dims, embed_dims))
        self.visual_proj = nn.Sequential(
            nn.LayerNorm(embed_dims), nn.Linear(embed_dims, embed_dims),
            nn.LayerNorm(embed_dims))
        self.layers = nn.ModuleList([
            SSPDecoderLayer(embed_dims, num_heads, mlp_ratio, dropout)
            for _ in range(num_layers)
        ])
        self.out_proj = nn.Sequential(
            nn.LayerNorm(embed_dims), nn.Linear(embed_dims, embed_dims))
        self._init_parameters()

    def _init_parameters(self) -> None:
        # The authors' initialisation: truncated normal (std 0.02) for every
        # projection, including the attention's, and zero biases.
        for m in self.modules():
            if isinstance(m, nn.Linear):
                trunc_normal_(m.weight, std=.02)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, MultiheadAttention):
                trunc_normal_(m.in_proj_weight, std=.02)
            elif isinstance(m, nn.LayerNorm):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, memory: torch.Tensor,
                visual: torch.Tensor) -> torch.Tensor:
        """Compute each sequence's prompt for the memory.

        Args:
            memory (Tensor): The memory, ``[K, C]`` (shared by the batch)
                or ``[B, K, C]``.
            visual (Tensor): Visual tokens ``[B, M, C]``.

        Returns:
            Tensor: The prompt ``[B, K, C]``, to be added to the memory.
        """
        if memory.dim() == 2:
            memory = memory.unsqueeze(0)
        x = self.memory_proj(memory)
        visual = self.visual_proj(visual)
        for layer in self.layers:
            x = layer(x, visual)
        return self.out_proj(x)
