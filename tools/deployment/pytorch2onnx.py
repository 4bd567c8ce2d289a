# Copyright (c) mmtfclip contributors. All rights reserved.
"""Export a trained model's test path to ONNX.

The graph takes ``frames``, uint8 RGB ``[N, T, 3, H, W]`` (N clips of T
frames, as the data pipeline packs them) and, when the model has SIE,
``cam_ids`` ``[N]`` int64 (0-based cameras); it returns ``embedding``
``[N, D]`` float32, the model's test embedding (not L2-normalised). N is
dynamic. Normalisation with the config's data-preprocessor mean and std is
inside the graph. A model without SIE (``num_cams=0``) has no ``cam_ids``
input. A tracklet longer than T is embedded as the PyTorch model does in
dense testing: its clips as rows, the rows averaged. The file's metadata
(``mmtfclip.*`` keys) records how the config's test pipeline prepares a
tracklet (clip length, sampling mode, input size, resize), so that
``mmtfclip.deployment.ONNXTrackletRunner`` embeds whole tracklets from it
with numpy and onnxruntime only.

The exporter is torch's TorchScript-based one (``dynamo=False``): the
dynamo exporter, torch's default, needs ``onnxscript``, which the
project's requirements do not include.

Example::

    .venv/bin/python tools/deployment/pytorch2onnx.py configs/tfclip_mars.py \\
        work_dirs/tfclip_mars/epoch_80.pth --out tfclip_mars.onnx --verify
"""
import argparse
import os.path as osp

import numpy as np
import torch
from mmengine.config import DictAction
from mmengine.utils import mkdir_or_exist

from mmtfclip.apis import get_test_pipeline, init_model
from mmtfclip.deployment import TrackletEmbedder
from mmtfclip.deployment.onnx_tracklet_runner import pipeline_metadata
from mmtfclip.fileio import atomic_write_bytes


def parse_args():
    parser = argparse.ArgumentParser(
        description='Export the test-time model to ONNX')
    parser.add_argument('config', help='config file')
    parser.add_argument('checkpoint', help='checkpoint file')
    parser.add_argument('--out', required=True, help='output .onnx file')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=3,
        metavar=('T', 'H', 'W'),
        help='frames per clip and frame size (default: the config\'s '
        'model.neck.num_frames and model.backbone.img_size; other values '
        'must fit the checkpoint)')
    parser.add_argument(
        '--opset', type=int, default=17, help='ONNX opset (default: 17)')
    parser.add_argument(
        '--verify',
        action='store_true',
        help='compare onnxruntime\'s output with PyTorch\'s')
    parser.add_argument(
        '--tolerance',
        type=float,
        default=1e-4,
        help='largest absolute difference --verify accepts')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config')
    return parser.parse_args()


def example_inputs(embedder: TrackletEmbedder, batch: int, shape,
                   seed: int) -> dict:
    """Random uint8 frames (and cameras) for the embedder's inputs."""
    gen = torch.Generator().manual_seed(seed)
    inputs = dict(
        frames=torch.randint(
            0,
            256, (batch, *shape[:1], 3, *shape[1:]),
            generator=gen,
            dtype=torch.uint8))
    if embedder.use_camera_ids:
        num_cams = embedder.model.num_cams
        inputs['cam_ids'] = torch.randint(
            0, num_cams, (batch, ), generator=gen, dtype=torch.long)
    return inputs


def export(embedder: TrackletEmbedder, shape, out: str, opset: int) -> None:
    """Write the ONNX graph of ``embedder`` for clips of ``shape``.

    Args:
        embedder (TrackletEmbedder): The model to export.
        shape (Sequence[int]): ``(T, H, W)``.
        out (str): The ``.onnx`` file.
        opset (int): The ONNX opset.
    """
    inputs = example_inputs(embedder, 2, shape, seed=0)
    names = list(inputs)
    mkdir_or_exist(osp.dirname(osp.abspath(out)))
    torch.onnx.export(
        embedder,
        tuple(inputs.values()),
        out,
        dynamo=False,
        input_names=names,
        output_names=['embedding'],
        dynamic_axes={
            **{
                name: {
                    0: 'batch'
                }
                for name in names
            }, 'embedding': {
                0: 'batch'
            }
        },
        opset_version=opset,
        do_constant_folding=True)


def write_metadata(out: str, metadata: dict) -> None:
    """Store ``metadata`` (str -> str) in the ONNX file's metadata_props."""
    try:
        import onnx
    except ImportError as err:
        raise ImportError('Writing the ONNX metadata needs the onnx package: '
                          '`pip install onnx`.') from err
    graph = onnx.load(out)
    for key, value in metadata.items():
        entry = graph.metadata_props.add()
        entry.key, entry.value = key, value
    atomic_write_bytes(graph.SerializeToString(), out)


def verify(embedder: TrackletEmbedder, shape, out: str,
           tolerance: float) -> float:
    """Compare onnxruntime with PyTorch at two batch sizes.

    Returns:
        float: The largest absolute difference.

    Raises:
        AssertionError: If it exceeds ``tolerance``.
    """
    import onnxruntime as ort
    session = ort.InferenceSession(out, providers=['CPUExecutionProvider'])
    worst = 0.0
    for batch, seed in ((1, 1), (3, 2)):
        inputs = example_inputs(embedder, batch, shape, seed)
        with torch.no_grad():
            expected = embedder(**inputs).numpy()
        got = session.run(None, {k: v.numpy() for k, v in inputs.items()})[0]
        if got.shape != expected.shape:
            raise AssertionError(f'onnxruntime gave {got.shape} for batch '
                                 f'{batch}, PyTorch {expected.shape}.')
        worst = max(worst, float(np.abs(got - expected).max()))
    if worst > tolerance:
        raise AssertionError(
            f'onnxruntime differs from PyTorch by up to {worst:.2e} '
            f'(tolerance {tolerance:.0e}).')
    return worst


def main():
    args = parse_args()
    if not args.out.endswith('.onnx'):
        raise ValueError(f'--out must end with .onnx, got {args.out}')
    cfg_options = dict(args.cfg_options or {})
    if args.shape is not None:
        cfg_options['model.backbone.img_size'] = tuple(args.shape[1:])
        cfg_options['model.neck.num_frames'] = args.shape[0]
    model = init_model(args.config, args.checkpoint, cfg_options=cfg_options)
    embedder = TrackletEmbedder(model).eval()
    shape = (model.num_frames, *model.backbone.img_size)
    export(embedder, shape, args.out, args.opset)
    metadata, unsupported = pipeline_metadata(
        get_test_pipeline(model.cfg),
        model.num_cams if embedder.use_camera_ids else 0)
    write_metadata(args.out, metadata)
    if unsupported:
        print('Note: the test pipeline has steps ONNXTrackletRunner does not '
              f'reproduce ({", ".join(unsupported)}); it will refuse this '
              'file. The graph itself is complete.')
    print(f'ONNX model written to {args.out}: frames uint8 [N, {shape[0]}, '
          f'3, {shape[1]}, {shape[2]}]' +
          (', cam_ids int64 [N]' if embedder.use_camera_ids else '') +
          ' -> embedding [N, D]')
    if args.verify:
        worst = verify(embedder, shape, args.out, args.tolerance)
        print(f'onnxruntime matches PyTorch at batch 1 and 3: largest '
              f'absolute difference {worst:.2e}')


if __name__ == '__main__':
    main()
