# Copyright (c) mmtfclip contributors. All rights reserved.
"""Tiny random CLIP models saved in the formats real CLIP weights come in.

Tests and ``tools/analysis_tools/verify_against_official.py`` use them in
place of OpenAI's ``ViT-B-16.pt`` (no weights can be downloaded in CI).
The defaults give a 2-layer, 64-wide ViT with 16-pixel patches on a
14 x 14 grid (a 224-pixel image, like the real ViT-B/16) and a 1-layer,
32-wide text tower, with OpenAI's key names: ``visual.*`` for the image
tower, ``positional_embedding``, ``token_embedding.weight``,
``transformer.*``, ``ln_final.*``, ``text_projection`` and ``logit_scale``
for the text tower.

Example:
    >>> from mmtfclip.testing import save_tiny_clip, tiny_clip_arch
    >>> path = save_tiny_clip('/tmp/ViT-tiny.pt', fmt='openai_jit')
    >>> backbone = dict(type='CLIPViT', arch=tiny_clip_arch(),
    ...                 pretrained=path)
"""
import math
import os
import os.path as osp
import warnings
from collections import OrderedDict
from typing import Dict, Optional

import torch
import torch.nn as nn
from open_clip.transformer import (LayerNorm, QuickGELU, Transformer,
                                   VisionTransformer)

__all__ = [
    'TINY_CLIP_FORMATS', 'tiny_clip_arch', 'make_tiny_clip_state_dict',
    'save_tiny_clip'
]

TINY_CLIP_FORMATS = ('openai_jit', 'openai_state_dict', 'open_clip',
                     'safetensors')


def tiny_clip_arch(width: int = 64,
                   layers: int = 2,
                   heads: int = 2,
                   patch_size: int = 16,
                   embed_dim: int = 32,
                   **kwargs) -> Dict[str, int]:
    """The ``CLIPViT`` arch dict of a tiny CLIP made with the same sizes.

    Args:
        width (int): Image-tower width. Defaults to 64.
        layers (int): Image-tower depth. Defaults to 2.
        heads (int): Image-tower heads. Defaults to 2.
        patch_size (int): Patch size. Defaults to 16.
        embed_dim (int): Joint embedding size (output_dim). Defaults to 32.
        **kwargs: The other arguments of :func:`make_tiny_clip_state_dict`,
            accepted so that one kwargs dict serves both; ignored.

    Returns:
        dict: ``dict(width, layers, heads, patch_size, output_dim)``.
    """
    return dict(
        width=width,
        layers=layers,
        heads=heads,
        patch_size=patch_size,
        output_dim=embed_dim)


def _transformer_tensors(prefix: str, width: int, layers: int,
                         gen: torch.Generator) -> Dict[str, torch.Tensor]:
    """Random weights of CLIP's residual attention blocks."""

    def normal(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    def norm(prefix_ln):
        # Non-trivial affine parameters, so that tests notice a missing or
        # misplaced LayerNorm.
        return {
            f'{prefix_ln}.weight': 1 + normal(width, std=0.1),
            f'{prefix_ln}.bias': normal(width, std=0.1),
        }

    tensors = {}
    for i in range(layers):
        block = f'{prefix}transformer.resblocks.{i}'
        tensors.update(norm(f'{block}.ln_1'))
        tensors[f'{block}.attn.in_proj_weight'] = normal(
            3 * width, width, std=width**-0.5)
        tensors[f'{block}.attn.in_proj_bias'] = normal(3 * width, std=0.1)
        tensors[f'{block}.attn.out_proj.weight'] = normal(
            width, width, std=width**-0.5)
        tensors[f'{block}.attn.out_proj.bias'] = normal(width, std=0.1)
        tensors.update(norm(f'{block}.ln_2'))
        tensors[f'{block}.mlp.c_fc.weight'] = normal(
            4 * width, width, std=width**-0.5)
        tensors[f'{block}.mlp.c_fc.bias'] = normal(4 * width, std=0.1)
        tensors[f'{block}.mlp.c_proj.weight'] = normal(
            width, 4 * width, std=(4 * width)**-0.5)
        tensors[f'{block}.mlp.c_proj.bias'] = normal(width, std=0.1)
    return tensors


def make_tiny_clip_state_dict(
        width: int = 64,
        layers: int = 2,
        heads: int = 2,
        patch_size: int = 16,
        grid: int = 14,
        embed_dim: int = 32,
        text_width: int = 32,
        text_layers: int = 1,
        text_heads: int = 2,
        context_length: int = 77,
        vocab_size: int = 1000,
        seed: int = 0,
        dtype: torch.dtype = torch.float32
) -> 'OrderedDict[str, torch.Tensor]':
    """A random CLIP state dict with OpenAI's key names (weights only).

    Every tensor, LayerNorm affine parameters included, is drawn from a
    generator seeded with ``seed``, so equal arguments give equal weights.

    Args:
        width (int): Image-tower width. Defaults to 64.
        layers (int): Image-tower depth. Defaults to 2.
        heads (int): Image-tower heads; must divide ``width``.
            Defaults to 2.
        patch_size (int): Patch size. Defaults to 16.
        grid (int): Side of the square pretraining patch grid (the image
            is ``grid * patch_size`` pixels). Defaults to 14.
        embed_dim (int): Joint embedding size. Defaults to 32.
        text_width (int): Text-tower width. Defaults to 32.
        text_layers (int): Text-tower depth. Defaults to 1.
        text_heads (int): Text-tower heads. Defaults to 2.
        context_length (int): Text context length. Defaults to 77.
        vocab_size (int): Vocabulary size. Defaults to 1000.
        seed (int): Random seed. Defaults to 0.
        dtype (torch.dtype): Dtype of the tensors (OpenAI's archives
            store float16). Defaults to torch.float32.

    Returns:
        OrderedDict: ``visual.*`` and text-tower tensors.
    """
    if width % heads or text_width % text_heads:
        raise ValueError(
            f'heads must divide the width: width={width}, heads={heads}, '
            f'text_width={text_width}, text_heads={text_heads}.')
    gen = torch.Generator().manual_seed(seed)

    def normal(*shape, std):
        return torch.randn(*shape, generator=gen) * std

    scale = width**-0.5
    sd = OrderedDict()
    sd['visual.class_embedding'] = normal(width, std=scale)
    sd['visual.positional_embedding'] = normal(
        grid * grid + 1, width, std=scale)
    sd['visual.proj'] = normal(width, embed_dim, std=scale)
    sd['visual.conv1.weight'] = normal(
        width,
        3,
        patch_size,
        patch_size,
        std=(3 * patch_size * patch_size)**-0.5)
    sd['visual.ln_pre.weight'] = 1 + normal(width, std=0.1)
    sd['visual.ln_pre.bias'] = normal(width, std=0.1)
    sd.update(_transformer_tensors('visual.', width, layers, gen))
    sd['visual.ln_post.weight'] = 1 + normal(width, std=0.1)
    sd['visual.ln_post.bias'] = normal(width, std=0.1)
    sd['positional_embedding'] = normal(context_length, text_width, std=0.01)
    sd['text_projection'] = normal(text_width, embed_dim, std=text_width**-0.5)
    sd['logit_scale'] = torch.tensor(math.log(1 / 0.07))
    sd['token_embedding.weight'] = normal(vocab_size, text_width, std=0.02)
    sd.update(_transformer_tensors('', text_width, text_layers, gen))
    sd['ln_final.weight'] = 1 + normal(text_width, std=0.1)
    sd['ln_final.bias'] = normal(text_width, std=0.1)
    return OrderedDict((k, v.to(dtype)) for k, v in sd.items())


class _OpenAIStyleCLIP(nn.Module):
    """A CLIP whose module tree reproduces OpenAI's key names, scripted
    into the same kind of archive as OpenAI's published files."""

    def __init__(self, state_dict: Dict[str, torch.Tensor], heads: int,
                 text_heads: int):
        super().__init__()
        width = state_dict['visual.conv1.weight'].shape[0]
        patch_size = state_dict['visual.conv1.weight'].shape[-1]
        grid = math.isqrt(state_dict['visual.positional_embedding'].shape[0] -
                          1)
        layers = len([
            k for k in state_dict
            if k.startswith('visual.') and k.endswith('.attn.in_proj_weight')
        ])
        embed_dim = state_dict['visual.proj'].shape[1]
        context_length, text_width = state_dict['positional_embedding'].shape
        text_layers = len([
            k for k in state_dict if k.startswith('transformer.')
            and k.endswith('.attn.in_proj_weight')
        ])
        vocab_size = state_dict['token_embedding.weight'].shape[0]

        self.visual = VisionTransformer(
            image_size=grid * patch_size,
            patch_size=patch_size,
            width=width,
            layers=layers,
            heads=heads,
            mlp_ratio=4.0,
            output_dim=embed_dim,
            act_layer=QuickGELU)
        self.transformer = Transformer(
            text_width, text_layers, text_heads, act_layer=QuickGELU)
        self.token_embedding = nn.Embedding(vocab_size, text_width)
        self.positional_embedding = nn.Parameter(
            torch.empty(context_length, text_width))
        self.ln_final = LayerNorm(text_width)
        self.text_projection = nn.Parameter(torch.empty(text_width, embed_dim))
        self.logit_scale = nn.Parameter(torch.ones([]))
        # OpenAI's archives carry these scalars among their tensors.
        self.register_buffer('input_resolution',
                             torch.tensor(grid * patch_size))
        self.register_buffer('context_length', torch.tensor(context_length))
        self.register_buffer('vocab_size', torch.tensor(vocab_size))
        # A plain attribute, as in OpenAI's model: traced into a constant,
        # so that (like OpenAI's files) the archive's state dict has no
        # -inf tensor.
        self.attn_mask = torch.full((context_length, context_length),
                                    float('-inf')).triu_(1)

    def forward(self, image: torch.Tensor, text: torch.Tensor):
        """CLIP's image and text embeddings (not normalised)."""
        image_features = self.visual(image)
        x = self.token_embedding(text) + self.positional_embedding
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        # The end-of-text token has the largest id in CLIP's vocabulary.
        x = x[torch.arange(x.shape[0]), text.argmax(dim=-1)]
        return image_features, x @ self.text_projection


def save_tiny_clip(path: str,
                   fmt: str = 'openai_jit',
                   state_dict: Optional[Dict[str, torch.Tensor]] = None,
                   **kwargs) -> str:
    """Save a tiny random CLIP in one of the formats real weights come in.

    Args:
        path (str): Where to write; folders are created.
        fmt (str): One of :data:`TINY_CLIP_FORMATS`:

            - ``'openai_jit'``: a TorchScript archive like OpenAI's
              ``ViT-B-16.pt``; ``torch.jit.load(path).state_dict()`` gives
              OpenAI's layout, with the ``input_resolution``,
              ``context_length`` and ``vocab_size`` scalars.
            - ``'openai_state_dict'``: that state dict saved with
              ``torch.save``.
            - ``'open_clip'``: ``{'state_dict': {'module.' + key: ...}}`` as
              open_clip's trainer saves its checkpoints (no scalars).
            - ``'safetensors'``: the state dict in a ``.safetensors`` file,
              as open_clip's Hugging Face hub files (no scalars).

            Defaults to 'openai_jit'.
        state_dict (dict, optional): The weights, as made by
            :func:`make_tiny_clip_state_dict`; None makes them from
            ``kwargs``. Defaults to None.
        **kwargs: Arguments of :func:`make_tiny_clip_state_dict`.

    Returns:
        str: ``path``.
    """
    if fmt not in TINY_CLIP_FORMATS:
        raise ValueError(
            f'fmt must be one of {TINY_CLIP_FORMATS}, got {fmt!r}.')
    if state_dict is None:
        state_dict = make_tiny_clip_state_dict(**kwargs)
    os.makedirs(osp.dirname(osp.abspath(path)), exist_ok=True)
    if fmt == 'open_clip':
        torch.save(
            {
                'epoch':
                1,
                'name':
                'tiny-clip',
                'state_dict':
                OrderedDict((f'module.{k}', v) for k, v in state_dict.items()),
            }, path)
        return path
    if fmt == 'safetensors':
        from safetensors.torch import save_file
        save_file({k: v.contiguous() for k, v in state_dict.items()}, path)
        return path

    dtype = state_dict['visual.conv1.weight'].dtype
    model = _OpenAIStyleCLIP(
        state_dict,
        heads=kwargs.get('heads', 2),
        text_heads=kwargs.get('text_heads', 2))
    full = OrderedDict(state_dict)
    for key in ('input_resolution', 'context_length', 'vocab_size'):
        full[key] = getattr(model, key)
    model.load_state_dict(full, strict=True)
    if fmt == 'openai_state_dict':
        torch.save(full, path)
        return path
    # Traced in float32 (CPU kernels), then cast as OpenAI's files are.
    model = model.float().eval()
    size = int(model.input_resolution)
    example = (torch.zeros(1, 3, size, size),
               torch.zeros(1, int(model.context_length), dtype=torch.long))
    # torch deprecates TorchScript, but it is the format to imitate here;
    # the tracer's warnings about fixed shapes do not matter for an archive
    # that is only read for its weights.
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter('ignore', FutureWarning)
        warnings.simplefilter('ignore', torch.jit.TracerWarning)
        traced = torch.jit.trace(model, example, check_trace=False)
        torch.jit.save(traced.to(dtype), path)
    return path
