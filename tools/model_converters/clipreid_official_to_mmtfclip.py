# Copyright (c) mmtfclip contributors. All rights reserved.
"""Convert a checkpoint of the authors' CLIP-ReID code for mmtfclip.

The input is what their ``train_clipreid.py`` saves (``ViT-B-16_60.pth``,
their released image-ReID models): the plain state dict of their
``build_transformer`` (``model/make_model_clipreid.py``), keys optionally
prefixed with ``module.``. The output loads with
``mmtfclip.apis.init_model`` and a CLIP-ReID config of the same sizes
(identities, cameras, input size, stride).

Key map (``*``: the rest of the key, kept):

================================  =========================================
authors' key                      mmtfclip key
================================  =========================================
image_encoder.*                   backbone.*
cv_embed ``[cams, 768]``          backbone.cam_embed
text_encoder.*                    text_encoder.*
prompt_learner.cls_ctx            prompt_learner.cls_ctx
bottleneck.*                      head.cls_bn.*
bottleneck_proj.*                 head.proj_bn.*
classifier.weight                 head.cls_classifier.weight
classifier_proj.weight            head.proj_classifier.weight
================================  =========================================

Their text encoder holds no token embedding (their prompt learner reads
CLIP's once, at construction, and keeps the template's embeddings as
``prompt_learner.token_prefix`` / ``token_suffix``). Ours looks the template
up in CLIP's token embedding, so ``--clip`` names the CLIP file they trained
from (OpenAI's ``ViT-B-16.pt``): its ``token_embedding.weight`` is added,
and their prefix and suffix must equal its embeddings of the template, or
the conversion stops (a different CLIP file or template). The two buffers
are then dropped. Any other unknown or missing key stops the conversion
with both lists. The text features of stage 2 are not in their checkpoint;
``head.clip_memory`` is left out (the test embedding does not use it).

Usage::

    python tools/model_converters/clipreid_official_to_mmtfclip.py \
        ViT-B-16_60.pth checkpoints/clipreid_market1501_official.pth \
        --clip ~/.cache/clip/ViT-B-16.pt
"""
import argparse
import os
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, List

import open_clip
import torch

from mmtfclip.fileio import check_finite, load_file, save_file
from mmtfclip.models.backbones.clip_weights import load_clip_checkpoint

#: Their template and its placeholders (model/make_model_clipreid.py).
TEMPLATE = 'A photo of a X X X X person.'
PREFIX_LEN, NUM_TOKENS = 5, 4

_BLOCK_TENSORS = ('ln_1.weight', 'ln_1.bias', 'attn.in_proj_weight',
                  'attn.in_proj_bias', 'attn.out_proj.weight',
                  'attn.out_proj.bias', 'ln_2.weight', 'ln_2.bias',
                  'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight',
                  'mlp.c_proj.bias')
_VISUAL_TENSORS = ('class_embedding', 'positional_embedding', 'proj',
                   'conv1.weight', 'ln_pre.weight', 'ln_pre.bias',
                   'ln_post.weight', 'ln_post.bias')
_TEXT_TENSORS = ('positional_embedding', 'text_projection', 'ln_final.weight',
                 'ln_final.bias')
_BN_TENSORS = ('weight', 'bias', 'running_mean', 'running_var',
               'num_batches_tracked')
_RENAME = {
    'classifier.weight': 'head.cls_classifier.weight',
    'classifier_proj.weight': 'head.proj_classifier.weight',
    'prompt_learner.cls_ctx': 'prompt_learner.cls_ctx',
}
_BN_RENAME = {'bottleneck': 'head.cls_bn', 'bottleneck_proj': 'head.proj_bn'}
_TEMPLATE_BUFFERS = ('prompt_learner.token_prefix',
                     'prompt_learner.token_suffix')


class LayoutError(ValueError):
    """The state dict is not the layout this converter maps."""


def _depth(keys, pattern: str) -> int:
    found = {
        int(m.group(1))
        for k in keys
        for m in [re.match(pattern, k)] if m
    }
    return max(found) + 1 if found else 0


def expected_keys(visual_depth: int, text_depth: int,
                  with_cameras: bool) -> List[str]:
    """Every key of their model for the given depths."""
    keys = [f'image_encoder.{t}' for t in _VISUAL_TENSORS]
    keys += [
        f'image_encoder.transformer.resblocks.{i}.{t}'
        for i in range(visual_depth) for t in _BLOCK_TENSORS
    ]
    keys += [f'text_encoder.{t}' for t in _TEXT_TENSORS]
    keys += [
        f'text_encoder.transformer.resblocks.{i}.{t}'
        for i in range(text_depth) for t in _BLOCK_TENSORS
    ]
    if with_cameras:
        keys.append('cv_embed')
    keys += [f'{bn}.{t}' for bn in _BN_RENAME for t in _BN_TENSORS]
    keys += list(_RENAME) + list(_TEMPLATE_BUFFERS)
    return keys


def map_key(key: str) -> str:
    """Our key for one of :func:`expected_keys` (not the two buffers)."""
    if key.startswith('image_encoder.'):
        return 'backbone.' + key[len('image_encoder.'):]
    if key == 'cv_embed':
        return 'backbone.cam_embed'
    if key.startswith('text_encoder.'):
        return key
    name, _, param = key.rpartition('.')
    if name in _BN_RENAME:
        return f'{_BN_RENAME[name]}.{param}'
    return _RENAME[key]


def convert(state_dict: Dict[str, torch.Tensor],
            token_embedding: torch.Tensor) -> 'OrderedDict[str, torch.Tensor]':
    """Convert the authors' CLIP-ReID state dict.

    Args:
        state_dict (dict): Their state dict, with or without ``module.``.
        token_embedding (Tensor): CLIP's ``token_embedding.weight``
            ``[49408, 512]`` of the CLIP file they trained from.

    Returns:
        OrderedDict: The state dict of mmtfclip's ``CLIPReID``.

    Raises:
        LayoutError: For unknown or missing keys (both listed), or a
            template embedding that does not match ``token_embedding``.
    """
    state_dict = OrderedDict(
        (k[len('module.'):] if k.startswith('module.') else k, v)
        for k, v in state_dict.items())
    keys = list(state_dict)
    visual_depth = _depth(keys,
                          r'image_encoder\.transformer\.resblocks\.(\d+)\.')
    text_depth = _depth(keys, r'text_encoder\.transformer\.resblocks\.(\d+)\.')
    expected = set(expected_keys(visual_depth, text_depth, 'cv_embed' in keys))
    unknown = [k for k in keys if k not in expected]
    missing = sorted(expected - set(keys))
    if not visual_depth or not text_depth:
        missing.append('image_encoder / text_encoder .transformer.'
                       'resblocks.0.*')
    if unknown or missing:
        raise LayoutError(
            'This state dict is not the layout of the published CLIP-ReID '
            'ViT model (model/make_model_clipreid.py) and cannot be '
            f'converted.\n  unknown keys ({len(unknown)}): {unknown}\n'
            f'  missing keys ({len(missing)}): {missing}')

    tokens = open_clip.tokenize([TEMPLATE])
    if int(tokens.max()) >= token_embedding.shape[0]:
        raise LayoutError(
            f'The token embedding has {token_embedding.shape[0]} rows; '
            "CLIP's tokenizer needs 49408.")
    words = token_embedding.float()[tokens]
    template = dict(
        token_prefix=words[:, :PREFIX_LEN],
        token_suffix=words[:, PREFIX_LEN + NUM_TOKENS:])
    for name, ours in template.items():
        theirs = state_dict[f'prompt_learner.{name}'].float()
        if theirs.shape != ours.shape or not torch.allclose(
                theirs, ours, rtol=1e-3, atol=1e-5):
            raise LayoutError(
                f'prompt_learner.{name} {tuple(theirs.shape)} is not the '
                f'embedding of "{TEMPLATE}" in the given CLIP file '
                f'{tuple(ours.shape)}: give --clip the CLIP weights the '
                'model was trained from.')

    converted = OrderedDict()
    for key in keys:
        if key not in _TEMPLATE_BUFFERS:
            converted[map_key(key)] = state_dict[key]
    converted['text_encoder.token_embedding.weight'] = token_embedding
    return converted


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Their checkpoint (a state dict, possibly in ``{'state_dict': ...}``),
    read as plain tensors."""
    obj = load_file(path, what='CLIP-ReID checkpoint')
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        obj = obj['state_dict']
    if not isinstance(obj, dict) or not all(
            isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f'{path} does not hold a state dict of tensors.')
    check_finite(obj, path, what='CLIP-ReID checkpoint')
    return obj


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a checkpoint of the authors\' CLIP-ReID code '
        '(build_transformer state dict) into an mmtfclip checkpoint.')
    parser.add_argument('src', help='the authors\' checkpoint')
    parser.add_argument('dst', help='where to save the converted checkpoint')
    parser.add_argument(
        '--clip',
        required=True,
        help='the CLIP weights the model was trained from (OpenAI\'s '
        'ViT-B-16.pt or an open_clip checkpoint), for the token embedding')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    clip = load_clip_checkpoint(args.clip)
    if 'token_embedding.weight' not in clip:
        raise KeyError(f'{args.clip} has no token_embedding.weight: not a '
                       'whole CLIP model.')
    converted = convert(
        read_state_dict(args.src), clip['token_embedding.weight'])
    os.makedirs(osp.dirname(osp.abspath(args.dst)), exist_ok=True)
    meta = dict(
        converted_from=osp.basename(args.src),
        converter='clipreid_official_to_mmtfclip')
    save_file(dict(state_dict=converted, meta=meta), args.dst)
    print(f'Saved {len(converted)} tensors to {args.dst}', file=sys.stdout)


if __name__ == '__main__':
    main()
