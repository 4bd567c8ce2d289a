# Copyright (c) mmtfclip contributors. All rights reserved.
"""tools/deployment/pytorch2onnx.py on a tiny model (2-layer, 64-wide CLIP):
onnxruntime against the PyTorch test path at two batch sizes."""
import os.path as osp
import subprocess
import sys

import numpy as np
import onnxruntime as ort
import pytest
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample

from mmtfclip.apis import init_model
from mmtfclip.registry import MODELS

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
TINY = {
    'model.backbone.arch.width': 64,
    'model.backbone.arch.heads': 2,
    'model.neck.embed_dims': 64,
    'model.neck.num_heads': 2,
    'model.head.in_channels': 64,
    'model.head.num_classes': 8,
}


@pytest.mark.parametrize('num_cams', [2, 0])
def test_onnx_matches_pytorch(tmp_path, num_cams):
    options = dict(TINY, **{'model.backbone.num_cams': num_cams})
    cfg = Config.fromfile(osp.join(ROOT, 'configs', 'tfclip_demo.py'))
    cfg.merge_from_dict(options)
    torch.manual_seed(0)
    ckpt = str(tmp_path / 'tiny.pth')
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, ckpt)
    onnx_file = str(tmp_path / 'tiny.onnx')
    out = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'deployment', 'pytorch2onnx.py'),
        osp.join(ROOT, 'configs', 'tfclip_demo.py'), ckpt, '--out', onnx_file,
        '--verify', '--cfg-options', *(f'{k}={v}' for k, v in options.items())
    ],
                         capture_output=True,
                         text=True,
                         timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert 'onnxruntime matches PyTorch at batch 1 and 3' in out.stdout

    session = ort.InferenceSession(
        onnx_file, providers=['CPUExecutionProvider'])
    names = [i.name for i in session.get_inputs()]
    assert names == (['frames', 'cam_ids'] if num_cams else ['frames'])
    model = init_model(cfg, ckpt)
    gen = torch.Generator().manual_seed(3)
    for batch in (1, 4):
        frames = torch.randint(
            0, 256, (batch, 4, 3, 64, 32), generator=gen, dtype=torch.uint8)
        cams = torch.randint(0, 2, (batch, ), generator=gen)
        samples = [DataSample() for _ in range(batch)]
        for sample, cam in zip(samples, cams):
            sample.set_field(cam.clone(), 'camid')
        # The PyTorch reference: data preprocessor and forward(mode='tensor').
        data = model.data_preprocessor(
            dict(inputs=list(frames), data_samples=samples))
        with torch.no_grad():
            expected = model(**data, mode='tensor').numpy()
        feeds = dict(frames=frames.numpy())
        if num_cams:
            feeds['cam_ids'] = cams.numpy()
        got = session.run(None, feeds)[0]
        assert got.shape == (batch, 64 + 64 + 64)
        np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
