# Copyright (c) mmtfclip contributors. All rights reserved.
"""Convert OpenAI CLIP image-tower weights for mmpretrain's ViT.

The result loads into a model whose ``backbone`` is a ``ProjectedBackbone``
around mmpretrain's ``VisionTransformer`` built as CLIP's ViT::

    backbone=dict(
        type='ProjectedBackbone',
        encoder=dict(
            type='mmpretrain.VisionTransformer',
            _scope_='mmpretrain',
            arch='base',                  # or a dict for other widths
            img_size=(256, 128),          # (h, w)
            patch_size=16,
            patch_cfg=dict(padding=0),    # as CLIP: no padding
            pre_norm=True,                # CLIP's ln_pre
            final_norm=True,              # CLIP's ln_post, on every token
            norm_cfg=dict(type='LN', eps=1e-5),
            layer_cfgs=dict(act_cfg=dict(type='QuickGELU')),
            interpolate_mode='bilinear',
            out_type='raw'),
        in_channels=768,
        out_channels=512)

The wrapper holds CLIP's projection as a bias-free ``nn.Linear(768, 512)``
named ``proj`` (mmpretrain's ViT gives tokens only). The positional
embedding keeps the pretraining grid; mmpretrain's ViT resizes it to
``img_size`` when the checkpoint is loaded.

Key map (OpenAI ``visual.`` prefix dropped; ``i`` is the block index; ``E``
is ``backbone.encoder``):

=====================================  ======================================
OpenAI CLIP                            converted
=====================================  ======================================
conv1.weight                           E.patch_embed.projection.weight
class_embedding ``[C]``                E.cls_token ``[1, 1, C]``
positional_embedding ``[L, C]``        E.pos_embed ``[1, L, C]``
ln_pre.{weight,bias}                   E.pre_norm.{weight,bias}
transformer.resblocks.i.ln_1.*         E.layers.i.ln1.*
transformer.resblocks.i.attn.in_proj_  E.layers.i.attn.qkv.{weight,bias}
{weight,bias}
transformer.resblocks.i.attn.out_proj  E.layers.i.attn.proj.*
transformer.resblocks.i.ln_2.*         E.layers.i.ln2.*
transformer.resblocks.i.mlp.c_fc.*     E.layers.i.ffn.layers.0.0.*
transformer.resblocks.i.mlp.c_proj.*   E.layers.i.ffn.layers.1.*
ln_post.{weight,bias}                  E.ln1.{weight,bias}
proj ``[C, D]``                        backbone.proj.weight ``[D, C]``
=====================================  ======================================

The text tower is not used and is left out. The CLIP file is read as data
only (see ``mmtfclip.models.backbones.clip_weights``: a TorchScript archive's
weights are read out of its records, never by running it), and the result
is written atomically with a content digest (``mmtfclip.fileio.save_file``).

Usage::

    python tools/model_converters/clip_to_mmpretrain.py \
        checkpoints/clip/ViT-B-16.pt checkpoints/clip/vit-b16_mmpretrain.pth
"""
import argparse
import re
from collections import OrderedDict
from typing import Dict

import torch

from mmtfclip.fileio import save_file
from mmtfclip.models.backbones.clip_weights import (extract_visual_state_dict,
                                                    load_clip_checkpoint)

_BLOCK_MAP = {
    'ln_1': 'ln1',
    'attn.in_proj_weight': 'attn.qkv.weight',
    'attn.in_proj_bias': 'attn.qkv.bias',
    'attn.out_proj.weight': 'attn.proj.weight',
    'attn.out_proj.bias': 'attn.proj.bias',
    'ln_2': 'ln2',
    'mlp.c_fc': 'ffn.layers.0.0',
    'mlp.c_proj': 'ffn.layers.1',
}
_ENCODER = 'backbone.encoder.'
_BLOCK_KEY = re.compile(r'^transformer\.resblocks\.(\d+)\.(.+)$')


def _convert_block_key(index: str, rest: str) -> str:
    for old, new in _BLOCK_MAP.items():
        if rest == old or rest.startswith(old + '.'):
            return f'{_ENCODER}layers.{index}.{new}{rest[len(old):]}'
    raise KeyError(rest)


def convert(state_dict: Dict[str, torch.Tensor]) -> 'OrderedDict':
    """Convert OpenAI CLIP weights to a ``ProjectedBackbone`` around
    mmpretrain's ViT.

    Args:
        state_dict (dict): A whole CLIP state dict (``visual.*`` keys, the
            text tower is ignored) or an image tower's own (``conv1.weight``
            ...), as :func:`load_clip_checkpoint` returns.

    Returns:
        OrderedDict: ``backbone.encoder.*`` keys of mmpretrain's
        ``VisionTransformer`` and ``backbone.proj.weight``.

    Raises:
        KeyError: If an image-tower key has no counterpart; all such keys
            are listed.
    """
    visual = extract_visual_state_dict(state_dict)
    converted = OrderedDict()
    unknown = []
    for key, value in visual.items():
        match = _BLOCK_KEY.match(key)
        if key == 'conv1.weight':
            converted[_ENCODER + 'patch_embed.projection.weight'] = value
        elif key == 'class_embedding':
            converted[_ENCODER + 'cls_token'] = value.reshape(1, 1, -1)
        elif key == 'positional_embedding':
            converted[_ENCODER + 'pos_embed'] = value.unsqueeze(0)
        elif key.startswith('ln_pre.'):
            converted[_ENCODER + 'pre_norm.' + key[len('ln_pre.'):]] = value
        elif key.startswith('ln_post.'):
            converted[_ENCODER + 'ln1.' + key[len('ln_post.'):]] = value
        elif key == 'proj':
            converted['backbone.proj.weight'] = value.t().contiguous()
        elif match is not None:
            try:
                converted[_convert_block_key(*match.groups())] = value
            except KeyError:
                unknown.append(key)
        else:
            unknown.append(key)
    if unknown:
        raise KeyError(
            'These CLIP image-tower keys have no mmpretrain counterpart '
            f'(not an OpenAI-style CLIP ViT?): {unknown}')
    return converted


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert OpenAI CLIP image-tower weights (TorchScript '
        'archive, state dict or open_clip checkpoint) to mmpretrain '
        'VisionTransformer weights plus CLIP\'s projection, for '
        'ProjectedBackbone.')
    parser.add_argument('src', help='the CLIP weight file, e.g. ViT-B-16.pt')
    parser.add_argument('dst', help='the converted checkpoint to write')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    converted = convert(load_clip_checkpoint(args.src))
    save_file({'state_dict': converted}, args.dst)
    print(f'Converted {len(converted)} tensors from {args.src} to '
          f'{args.dst}.')


if __name__ == '__main__':
    main()
