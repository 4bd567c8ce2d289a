# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Optional

import torch
import torch.nn as nn
import torch.nn.functional as F


class MultiheadAttention(nn.Module):
    """Batch-first multi-head attention on ``scaled_dot_product_attention``.

    The parameters are those of :class:`torch.nn.MultiheadAttention`
    (``in_proj_weight`` ``[3C, C]`` holding the query, key and value
    projections, ``in_proj_bias``, ``out_proj``), so weights trained with it
    load unchanged, and attention layers written with three separate
    projections convert by concatenating their weights. Unlike it, inputs
    are ``[B, L, C]`` and the fused kernel of PyTorch does the attention.

    Args:
        embed_dims (int): Channels ``C``.
        num_heads (int): Number of heads; must divide ``embed_dims``.
        qkv_bias (bool): Whether the input projections have a bias.
            Defaults to True.
    """

    def __init__(self,
                 embed_dims: int,
                 num_heads: int,
                 qkv_bias: bool = True) -> None:
        super().__init__()
        if embed_dims % num_heads:
            raise ValueError(f'num_heads ({num_heads}) must divide '
                             f'embed_dims ({embed_dims}).')
        self.embed_dims = embed_dims
        self.num_heads = num_heads
        self.in_proj_weight = nn.Parameter(
            torch.empty(3 * embed_dims, embed_dims))
        if qkv_bias:
            self.in_proj_bias = nn.Parameter(torch.empty(3 * embed_dims))
        else:
            self.register_parameter('in_proj_bias', None)
        self.out_proj = nn.Linear(embed_dims, embed_dims)
        self._reset_parameters()

    @classmethod
    def from_torch(cls, attn: nn.MultiheadAttention) -> 'MultiheadAttention':
        """The batch-first equivalent of a torch attention layer.

        The new layer takes over the parameters of ``attn`` (the same
        tensors, not copies) and draws no random numbers, so a model that
        swaps its layers keeps its initialisation and its random stream.

        Args:
            attn (nn.MultiheadAttention): A self- or cross-attention layer
                with packed input projections and no ``bias_k`` / ``bias_v``
                or zero attention.

        Returns:
            MultiheadAttention: The layer, on ``attn``'s device.
        """
        if (not attn._qkv_same_embed_dim or attn.bias_k is not None
                or attn.add_zero_attn or attn.dropout):
            raise ValueError(
                'Only nn.MultiheadAttention layers with packed projections, '
                'no bias_k/bias_v, no zero attention and no dropout convert; '
                f'got {attn}.')
        with torch.device('meta'):
            new = cls(attn.embed_dim, attn.num_heads, attn.in_proj_bias
                      is not None)
        new.in_proj_weight = attn.in_proj_weight
        new.in_proj_bias = attn.in_proj_bias
        new.out_proj = attn.out_proj
        return new

    def _reset_parameters(self) -> None:
        # The initialisation of nn.MultiheadAttention.
        nn.init.xavier_uniform_(self.in_proj_weight)
        if self.in_proj_bias is not None:
            nn.init.zeros_(self.in_proj_bias)
        nn.init.zeros_(self.out_proj.bias)

    def _split_heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.num_heads,
                      self.embed_dims // self.num_heads).transpose(1, 2)

    def forward(self,
                query: torch.Tensor,
                key: Optional[torch.Tensor] = None,
                value: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Attend from ``query`` to ``key`` / ``value``.

        Args:
            query (Tensor): ``[B, Lq, C]``.
            key (Tensor, optional): ``[B, Lk, C]``; None means
                self-attention (``key = value = query``, one fused
                projection). Defaults to None.
            value (Tensor, optional): ``[B, Lk, C]``; None means ``key``.
                Defaults to None.

        Returns:
            Tensor: ``[B, Lq, C]``.
        """
        if key is None:
            q, k, v = F.linear(query, self.in_proj_weight,
                               self.in_proj_bias).chunk(
                                   3, dim=-1)
        else:
            value = key if value is None else value
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)
            b_q = b_k = b_v = None
            if self.in_proj_bias is not None:
                b_q, b_k, b_v = self.in_proj_bias.chunk(3)
            q = F.linear(query, w_q, b_q)
            k = F.linear(key, w_k, b_k)
            v = F.linear(value, w_v, b_v)
        out = F.scaled_dot_product_attention(
            self._split_heads(q), self._split_heads(k), self._split_heads(v))
        out = out.transpose(1, 2).reshape(query.shape)
        return self.out_proj(out)

    def extra_repr(self) -> str:
        return (f'embed_dims={self.embed_dims}, num_heads={self.num_heads}, '
                f'qkv_bias={self.in_proj_bias is not None}')
