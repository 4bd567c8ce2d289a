# Copyright (c) mmtfclip contributors. All rights reserved.
"""Parameters and FLOPs of a config's model per tracklet.

One clip of T frames goes through the test path (CLIP encoder with SIE,
TMD, the embedding) under mmengine's ``FlopAnalyzer`` (fvcore's counting:
one multiply-add = 1 FLOP; element-wise operations, softmax and
normalisation statistics are not counted, layer norms are). mmengine has no
handle for ``scaled_dot_product_attention``, which every attention layer
here uses (ours and open_clip's); this tool adds one that counts its two
matrix products, ``Q K^T`` and ``softmax(.) V``.

The model is built WITHOUT the CLIP weights (``model.backbone.pretrained``
is set to None and no weights are initialised or loaded): counting needs
only the shapes.

Example::

    python tools/analysis_tools/get_flops.py configs/tfclip_mars.py
    python tools/analysis_tools/get_flops.py configs/tfclip_mars.py \\
        --shape 4 256 128
"""
import argparse
from typing import Any, List

import numpy as np
import torch
from mmengine.analysis import FlopAnalyzer, parameter_count
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import Config, DictAction
from mmengine.registry import init_default_scope

from mmtfclip.deployment import TrackletEmbedder
from mmtfclip.registry import MODELS

# TF-CLIP's Table 2 (Yu et al., AAAI 2024), the full model on MARS.
PAPER_PARAMS_M = 104.26
PAPER_GFLOPS = 12.53
PARTS = ('backbone', 'neck', 'head')


def sdpa_flop_jit(inputs: List[Any], outputs: List[Any]) -> int:
    """FLOPs of ``aten::scaled_dot_product_attention``.

    Query ``[..., Lq, E]``, key ``[..., Lk, E]`` and value ``[..., Lk, Ev]``
    give ``Q K^T`` (``Lq * Lk * E`` multiply-adds per leading index) and the
    weighted sum of values (``Lq * Lk * Ev``).
    """
    q, k, v = (get_shape(x) for x in inputs[:3])
    batch = int(np.prod(q[:-2]))
    return batch * q[-2] * k[-2] * (q[-1] + v[-1])


def parse_args():
    parser = argparse.ArgumentParser(
        description='Parameters and FLOPs of a model per tracklet')
    parser.add_argument('config', help='config file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=3,
        metavar=('T', 'H', 'W'),
        help='frames per clip and frame size (default: the config\'s '
        'model.neck.num_frames and model.backbone.img_size)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config')
    return parser.parse_args()


def count(cfg: Config, shape=None) -> dict:
    """Count the parameters and FLOPs of one clip through the test path.

    Args:
        cfg (Config): The config; ``model.backbone.pretrained`` is set to
            None in it.
        shape (Sequence[int], optional): ``(T, H, W)``; None keeps the
            config's. Defaults to None.

    Returns:
        dict: ``shape`` ``(T, H, W)``, ``params`` (all parameters, also
        those used in training only), ``params_by_part`` and
        ``test_params_by_part`` (the parameters of modules the test path
        runs), ``flops`` and ``flops_by_part`` (one clip), ``unsupported``
        (the operators not counted, with their number of calls).
    """
    init_default_scope(cfg.get('default_scope', 'mmtfclip'))
    cfg.model.backbone.pretrained = None
    if shape is not None:
        cfg.model.backbone.img_size = (shape[1], shape[2])
        if cfg.model.get('neck') is not None:
            cfg.model.neck.num_frames = shape[0]
    model = MODELS.build(cfg.model).eval()
    frames = shape[0] if shape is not None else model.num_frames
    if frames is None:
        raise KeyError('The model has no neck to give the clip length: '
                       'pass --shape T H W.')
    height, width = model.backbone.img_size
    embedder = TrackletEmbedder(model, preprocess=False).eval()
    inputs = (torch.randn(1, frames, 3, height,
                          width), torch.zeros(1, dtype=torch.long))
    analyzer = FlopAnalyzer(embedder, inputs).set_op_handle(
        **{'aten::scaled_dot_product_attention': sdpa_flop_jit})
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    # Traced with autograd on: without it nn.MultiheadAttention (open_clip's
    # encoder layers) takes a fused kernel that no handle counts.
    by_module = analyzer.by_module()
    params = parameter_count(model)
    called = {
        name
        for name, _ in model.named_modules()
        if by_module.get(f'model.{name}' if name else 'model', 0) > 0
    }
    test_params = {part: 0 for part in PARTS}
    for name, param in model.named_parameters():
        part = name.split('.')[0]
        owner = name.rsplit('.', 1)[0]
        # Used by the test path: its module ran, or the module's parent did
        # (attention layers use their out_proj's weights without calling it).
        if part in test_params and {owner, owner.rsplit('.', 1)[0]} & called:
            test_params[part] += param.numel()
    return dict(
        shape=(frames, height, width),
        params=params[''],
        params_by_part={p: params.get(p, 0)
                        for p in PARTS},
        test_params_by_part=test_params,
        flops=by_module['model'],
        flops_by_part={p: by_module.get(f'model.{p}', 0)
                       for p in PARTS},
        unsupported=dict(analyzer.unsupported_ops()))


def main():
    args = parse_args()
    cfg = Config.fromfile(args.config)
    if args.cfg_options is not None:
        cfg.merge_from_dict(args.cfg_options)
    result = count(cfg, args.shape)
    frames, height, width = result['shape']
    line = '-' * 72
    print(line)
    print(f'{args.config}: one tracklet = one clip of T={frames} frames of '
          f'{height} x {width} (h x w), test path')
    print('(model built without the CLIP weights: '
          'model.backbone.pretrained=None)')
    print(line)
    print(f'{"":10}{"params (M)":>12}{"test-path params (M)":>22}'
          f'{"GFLOPs/clip":>13}{"GFLOPs/frame":>14}')
    for part in PARTS:
        print(f'{part:10}{result["params_by_part"][part] / 1e6:12.2f}'
              f'{result["test_params_by_part"][part] / 1e6:22.2f}'
              f'{result["flops_by_part"][part] / 1e9:13.3f}'
              f'{result["flops_by_part"][part] / 1e9 / frames:14.3f}')
    print(f'{"total":10}{result["params"] / 1e6:12.2f}'
          f'{sum(result["test_params_by_part"].values()) / 1e6:22.2f}'
          f'{result["flops"] / 1e9:13.3f}'
          f'{result["flops"] / 1e9 / frames:14.3f}')
    print(f'{"paper":10}{PAPER_PARAMS_M:12.2f}{"":22}{"":13}'
          f'{PAPER_GFLOPS:14.2f}   (Table 2, full TF-CLIP)')
    print(line)
    print(f'parameters: {result["params"]}')
    print(f'FLOPs per clip: {result["flops"]}')
    print('FLOPs count one multiply-add as 1 FLOP (fvcore / mmengine); '
          'attention products (scaled_dot_product_attention) are counted by '
          'this tool\'s handle; element-wise operations and softmax are '
          'not. GFLOPs/frame = GFLOPs/clip / T. "params" includes the parts '
          'used in training only (SSP, classifiers, BNNecks).')
    if result['unsupported']:
        print('not counted: ' +
              ', '.join(f'{op} x{n}'
                        for op, n in sorted(result['unsupported'].items())))


if __name__ == '__main__':
    main()
