# Copyright (c) mmtfclip contributors. All rights reserved.
"""Convert a checkpoint of the authors' TF-CLIP code for mmtfclip.

The input is what their training script saves: the plain state dict of
their ``build_transformer`` model (keys optionally prefixed with
``module.`` when it was trained with DistributedDataParallel). The output
loads with ``mmtfclip.apis.init_model`` and a TF-CLIP config of the same
sizes (identities, cameras, input size).

Key map (``i``: block / layer index; ``*``: the rest of the key, kept):

===========================================  ================================
authors' key                                 mmtfclip key
===========================================  ================================
image_encoder.*                              backbone.*
cv_embed ``[cams, C]``                       backbone.cam_embed
TMD.resblocks.i.message_fc.*                 neck.layers.i.message_fc.*
TMD.resblocks.i.message_ln.*                 neck.layers.i.message_norm.*
TMD.resblocks.i.message_attn.*               neck.layers.i.message_attn.*
TMD.resblocks.i.ln_1.* / ln_2.*              neck.layers.i.norm1.* / norm2.*
TMD.resblocks.i.attn.*                       neck.layers.i.attn.*
TMD.resblocks.i.mlp.c_fc.* / c_proj.*        neck.layers.i.mlp.fc1.* / fc2.*
SSP.text_proj.{0,1}.* (applied to memory)    head.ssp.memory_proj.{0,1}.*
SSP.memory_proj.{0,1,2}.* (to the tokens)    head.ssp.visual_proj.{0,1,2}.*
SSP.out_proj.{0,1}.*                         head.ssp.out_proj.{0,1}.*
SSP.decoder.i.norm{1,2,3}.*                  head.ssp.layers.i.norm{1,2,3}.*
SSP.decoder.i.{self,cross}_attn.             head.ssp.layers.i.{self,cross}_
{q,k,v}_proj.weight                          attn.in_proj_weight (q; k; v
                                             concatenated along dim 0)
SSP.decoder.i.{self,cross}_attn.proj.*       head.ssp.layers.i.{self,cross}_
                                             attn.out_proj.*
SSP.decoder.i.mlp.0.* / mlp.3.*              head.ssp.layers.i.mlp.fc1.* /
                                             fc2.*
bottleneck.*                                 head.cls_bn.*
bottleneck_proj.*                            head.proj_bn.*
bottleneck_proj_temp.* (frame features)      head.frame_bn.*
bottleneck_proj_temp2.* (sequence feature)   head.temporal_bn.*
classifier2.weight                           head.cls_classifier.weight
classifier_proj.weight                       head.proj_classifier.weight
classifier_proj_temp.weight (frames and      head.temporal_classifier.weight
sequence)
===========================================  ================================

Dropped, because the authors' forward pass never uses them:
``classifier_proj_temp2.weight``, ``SSP.alpha``, ``SSP.norm.weight``,
``SSP.norm.bias``. Any other key, or a key of the layout missing, stops the
conversion with the list of unknown and missing keys: checkpoints from an
earlier version of their prompt generator or temporal module have other
keys and cannot be mapped.

The CLIP-Memory is not part of their checkpoint (they rebuild it at the
start of training). ``--memory`` adds one (a ``[num_ids, 512]`` tensor, or
the ``clip_memory.pth`` cache that ``CLIPMemoryHook`` writes to the work
dir); without it the converted checkpoint has no ``head.clip_memory``,
which is fine for testing (the test embedding does not use the memory).

The checkpoint and the memory are read as data only
(``mmtfclip.fileio.load_file``: tensors and plain containers, nothing in
them runs) and refused when they hold NaN or infinite values; a checkpoint
that is already mmtfclip's (written by the Runner or by this converter) is
refused with a message saying so. The result is written atomically with a
content digest (``mmtfclip.fileio.save_file``).

Usage::

    python tools/model_converters/tfclip_official_to_mmtfclip.py \
        MARS_best_model.pth.tar checkpoints/tfclip_mars_official.pth
"""
import argparse
import os.path as osp
import re
import sys
from collections import OrderedDict
from typing import Dict, List, Optional

import torch
from mmengine.logging import print_log

from mmtfclip.fileio import UnsafeFileError, check_finite, load_file, save_file
from mmtfclip.utils import strip_module_prefix

# OpenAI CLIP's `visual.*` tensors (without the prefix), kept as they are.
_BLOCK_TENSORS = ('ln_1.weight', 'ln_1.bias', 'attn.in_proj_weight',
                  'attn.in_proj_bias', 'attn.out_proj.weight',
                  'attn.out_proj.bias', 'ln_2.weight', 'ln_2.bias',
                  'mlp.c_fc.weight', 'mlp.c_fc.bias', 'mlp.c_proj.weight',
                  'mlp.c_proj.bias')
_VISUAL_TENSORS = ('class_embedding', 'positional_embedding', 'proj',
                   'conv1.weight', 'ln_pre.weight', 'ln_pre.bias',
                   'ln_post.weight', 'ln_post.bias')

_TMD_RENAME = {
    'message_fc': 'message_fc',
    'message_ln': 'message_norm',
    'message_attn': 'message_attn',
    'attn': 'attn',
    'ln_1': 'norm1',
    'ln_2': 'norm2',
    'mlp.c_fc': 'mlp.fc1',
    'mlp.c_proj': 'mlp.fc2',
}
_TMD_TENSORS = ('message_fc.weight', 'message_fc.bias', 'message_ln.weight',
                'message_ln.bias', 'message_attn.in_proj_weight',
                'message_attn.in_proj_bias', 'message_attn.out_proj.weight',
                'message_attn.out_proj.bias', 'attn.in_proj_weight',
                'attn.in_proj_bias', 'attn.out_proj.weight',
                'attn.out_proj.bias', 'ln_1.weight', 'ln_1.bias',
                'ln_2.weight', 'ln_2.bias', 'mlp.c_fc.weight', 'mlp.c_fc.bias',
                'mlp.c_proj.weight', 'mlp.c_proj.bias')
_TMD_KEY = re.compile(r'TMD\.resblocks\.(\d+)\.(.+)$')

_SSP_PROJ = {
    'text_proj.0': 'memory_proj.0',
    'text_proj.1': 'memory_proj.1',
    'memory_proj.0': 'visual_proj.0',
    'memory_proj.1': 'visual_proj.1',
    'memory_proj.2': 'visual_proj.2',
    'out_proj.0': 'out_proj.0',
    'out_proj.1': 'out_proj.1',
}
_SSP_LAYER_TENSORS = tuple(
    [f'norm{i}.{p}' for i in (1, 2, 3) for p in ('weight', 'bias')] + [
        f'{a}.{t}' for a in ('self_attn', 'cross_attn')
        for t in ('q_proj.weight', 'k_proj.weight', 'v_proj.weight',
                  'proj.weight', 'proj.bias')
    ] + [f'mlp.{i}.{p}' for i in (0, 3) for p in ('weight', 'bias')])
_SSP_KEY = re.compile(r'SSP\.decoder\.(\d+)\.(.+)$')

_BN_RENAME = {
    'bottleneck': 'head.cls_bn',
    'bottleneck_proj': 'head.proj_bn',
    'bottleneck_proj_temp': 'head.frame_bn',
    'bottleneck_proj_temp2': 'head.temporal_bn',
}
_BN_TENSORS = ('weight', 'bias', 'running_mean', 'running_var',
               'num_batches_tracked')
_CLASSIFIER_RENAME = {
    'classifier2.weight': 'head.cls_classifier.weight',
    'classifier_proj.weight': 'head.proj_classifier.weight',
    'classifier_proj_temp.weight': 'head.temporal_classifier.weight',
}

#: Keys of the authors' model that its forward pass never uses.
UNUSED_KEYS = ('classifier_proj_temp2.weight', 'SSP.alpha', 'SSP.norm.weight',
               'SSP.norm.bias')


class LayoutError(ValueError):
    """The state dict is not the layout this converter maps."""


def _depth(keys, pattern: str) -> int:
    indices = {
        int(m.group(1))
        for k in keys
        for m in [re.match(pattern, k)] if m
    }
    return max(indices) + 1 if indices else 0


def expected_keys(visual_depth: int, tmd_depth: int, ssp_depth: int,
                  with_cameras: bool) -> List[str]:
    """The authors' keys for the given depths.

    Args:
        visual_depth (int): Transformer blocks of the image encoder.
        tmd_depth (int): TMD layers.
        ssp_depth (int): SSP decoder layers.
        with_cameras (bool): Whether SIE's ``cv_embed`` is there.

    Returns:
        list[str]: Every key their ``build_transformer`` state dict has.
    """
    keys = [f'image_encoder.{t}' for t in _VISUAL_TENSORS]
    keys += [
        f'image_encoder.transformer.resblocks.{i}.{t}'
        for i in range(visual_depth) for t in _BLOCK_TENSORS
    ]
    if with_cameras:
        keys.append('cv_embed')
    keys += [
        f'TMD.resblocks.{i}.{t}' for i in range(tmd_depth)
        for t in _TMD_TENSORS
    ]
    keys += [f'SSP.{p}.{t}' for p in _SSP_PROJ for t in ('weight', 'bias')]
    keys += [
        f'SSP.decoder.{i}.{t}' for i in range(ssp_depth)
        for t in _SSP_LAYER_TENSORS
    ]
    keys += [f'{bn}.{t}' for bn in _BN_RENAME for t in _BN_TENSORS]
    keys += list(_CLASSIFIER_RENAME)
    keys += list(UNUSED_KEYS)
    return keys


def map_key(key: str) -> Optional[str]:
    """Our key for a key of the authors' layout (see :func:`expected_keys`)."""
    if key.startswith('image_encoder.'):
        return 'backbone.' + key[len('image_encoder.'):]
    if key == 'cv_embed':
        return 'backbone.cam_embed'
    match = _TMD_KEY.match(key)
    if match:
        index, rest = match.groups()
        if rest not in _TMD_TENSORS:
            return None
        for old, new in _TMD_RENAME.items():
            if rest.startswith(old + '.'):
                return f'neck.layers.{index}.{new}.{rest[len(old) + 1:]}'
    if key.startswith('SSP.') and not key.startswith('SSP.decoder.'):
        name, _, param = key[len('SSP.'):].rpartition('.')
        if name in _SSP_PROJ and param in ('weight', 'bias'):
            return f'head.ssp.{_SSP_PROJ[name]}.{param}'
        return None
    match = _SSP_KEY.match(key)
    if match:
        index, rest = match.groups()
        if rest not in _SSP_LAYER_TENSORS:
            return None
        prefix = f'head.ssp.layers.{index}.'
        if rest.startswith('norm'):
            return prefix + rest
        if rest.startswith('mlp.'):
            _, layer, param = rest.split('.')
            return prefix + f"mlp.{'fc1' if layer == '0' else 'fc2'}.{param}"
        attn, proj, param = rest.split('.')
        if proj == 'proj':
            return prefix + f'{attn}.out_proj.{param}'
        # q/k/v are packed into in_proj_weight by convert().
        return prefix + f'{attn}.in_proj_weight'
    name, _, param = key.rpartition('.')
    if name in _BN_RENAME and param in _BN_TENSORS:
        return f'{_BN_RENAME[name]}.{param}'
    return _CLASSIFIER_RENAME.get(key)


def convert(state_dict: Dict[str, torch.Tensor],
            logger=None) -> 'OrderedDict[str, torch.Tensor]':
    """Convert the authors' ``build_transformer`` state dict.

    Args:
        state_dict (dict): Their state dict, with or without ``module.``.
        logger (optional): Where to log the dropped keys (``print_log``'s
            ``logger`` argument). Defaults to None (``'current'``).

    Returns:
        OrderedDict: The state dict of mmtfclip's ``TFCLIP``.

    Raises:
        LayoutError: If keys are unknown or missing; both lists are given.
    """
    state_dict = strip_module_prefix(state_dict)
    keys = list(state_dict)
    visual_depth = _depth(keys,
                          r'image_encoder\.transformer\.resblocks\.(\d+)\.')
    tmd_depth = _depth(keys, r'TMD\.resblocks\.(\d+)\.')
    ssp_depth = _depth(keys, r'SSP\.decoder\.(\d+)\.')
    expected = set(
        expected_keys(visual_depth, tmd_depth, ssp_depth, 'cv_embed' in keys))
    unknown = [k for k in keys if k not in expected]
    missing = sorted(expected - set(keys))
    if not visual_depth:
        missing.append('image_encoder.transformer.resblocks.0.*')
    if not tmd_depth:
        missing.append('TMD.resblocks.0.*')
    if not ssp_depth:
        missing.append('SSP.decoder.0.*')
    if unknown or missing:
        raise LayoutError(
            'This state dict is not the layout of the published TF-CLIP '
            'code (build_transformer with TMD and SSP) and cannot be '
            'converted; it may come from an earlier version of their '
            'prompt generator or temporal module.\n'
            f'  unknown keys ({len(unknown)}): {unknown}\n'
            f'  missing keys ({len(missing)}): {missing}')

    converted = OrderedDict()
    for key in keys:
        if key in UNUSED_KEYS:
            continue
        new_key = map_key(key)
        if new_key.endswith('in_proj_weight') and key.startswith('SSP.'):
            if new_key in converted:
                continue
            base = key.rsplit('.', 2)[0]
            converted[new_key] = torch.cat(
                [state_dict[f'{base}.{p}_proj.weight'] for p in 'qkv'])
        else:
            converted[new_key] = state_dict[key]
    print_log(
        'tfclip_official_to_mmtfclip: dropped the keys the authors\' model '
        f'never uses: {list(UNUSED_KEYS)}',
        logger=logger or 'current')
    return converted


def load_memory(path: str) -> torch.Tensor:
    """Read a CLIP-Memory: a tensor, or a dict with ``memory`` in it.

    Args:
        path (str): The file (``torch.save``).

    Returns:
        Tensor: ``[num_ids, D]``.
    """
    obj = load_file(path, what='CLIP-Memory')
    if isinstance(obj, dict):
        if 'memory' not in obj:
            raise KeyError(f'{path} holds a dict without "memory" '
                           f'(keys: {sorted(obj)}).')
        obj = obj['memory']
    if not isinstance(obj, torch.Tensor) or obj.dim() != 2:
        raise ValueError(f'{path} does not hold a [num_ids, D] memory.')
    check_finite({'memory': obj}, path, what='CLIP-Memory')
    return obj


# Top-level parts of an mmtfclip model's state dict.
_OUR_PARTS = ('backbone.', 'neck.', 'head.', 'visual_proj.',
              'data_preprocessor.')


def _already_ours(path: str) -> LayoutError:
    return LayoutError(
        f'{path} is already an mmtfclip checkpoint (written by the mmengine '
        'Runner or by this converter), not one of the authors\' code: '
        'nothing to convert. Give it to init_model, tools/test.py or '
        'load_from as it is.')


def read_state_dict(path: str) -> Dict[str, torch.Tensor]:
    """Read the authors' checkpoint (a state dict, possibly wrapped in
    ``{'state_dict': ...}``) without unpickling arbitrary objects.

    Raises:
        LayoutError: If the file is already an mmtfclip checkpoint.
        UnsafeFileError: If the file is missing, empty, truncated, holds
            more than tensors and containers, or NaN / infinite weights.
    """
    what = 'checkpoint of the authors\' code'
    try:
        obj = load_file(path, what=what)
    except UnsafeFileError:
        # A Runner checkpoint holds mmengine objects (its message hub);
        # tell it by the names its pickle refers to, without unpickling it.
        try:
            names = torch.serialization.get_unsafe_globals_in_checkpoint(path)
        except Exception:  # not a readable zip: the first error stands
            names = []
        if any(n.startswith('mmengine.') for n in names):
            raise _already_ours(path) from None
        raise
    if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
        obj = obj['state_dict']
    if not isinstance(obj, dict):
        raise ValueError(f'{path} does not hold a state dict.')
    keys = list(strip_module_prefix(obj))
    if any(k.startswith(_OUR_PARTS) for k in keys) and not any(
            k.startswith('image_encoder.') for k in keys):
        raise _already_ours(path)
    check_finite(obj, path, what=what)
    return obj


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Convert a checkpoint of the authors\' TF-CLIP code '
        '(build_transformer state dict) into an mmtfclip checkpoint.')
    parser.add_argument('src', help='the authors\' checkpoint')
    parser.add_argument('dst', help='where to save the converted checkpoint')
    parser.add_argument(
        '--memory',
        help='a CLIP-Memory to include ([num_ids, D] tensor, or the '
        'clip_memory.pth cache of CLIPMemoryHook)')
    parser.add_argument(
        '--num-frames',
        type=int,
        default=8,
        help='frames per clip (T) the model was trained with, recorded in '
        'the checkpoint so that init_model can check the config '
        '(default: 8, the authors\' SEQ_LEN)')
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    state_dict = read_state_dict(args.src)
    converted = convert(state_dict)
    if args.memory:
        converted['head.clip_memory'] = load_memory(args.memory)
    meta = dict(
        converted_from=osp.basename(args.src),
        converter='tfclip_official_to_mmtfclip',
        num_frames=args.num_frames)
    save_file(dict(state_dict=converted, meta=meta), args.dst)
    print(f'Saved {len(converted)} tensors to {args.dst}', file=sys.stdout)


if __name__ == '__main__':
    main()
