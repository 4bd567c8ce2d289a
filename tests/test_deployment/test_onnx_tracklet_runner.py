# Copyright (c) mmtfclip contributors. All rights reserved.
"""ONNXTrackletRunner on the graph tools/deployment/pytorch2onnx.py writes
for a tiny model: whole tracklets (dense clips, padding, averaging) match
extract_tracklet_features, in a process where PyTorch cannot be imported."""
import os
import os.path as osp
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.config import Config
from PIL import Image

from mmtfclip.apis import extract_tracklet_features, init_model
from mmtfclip.apis.search import tracklet_frames
from mmtfclip.deployment import ONNXTrackletRunner, dense_clip_indices
from mmtfclip.registry import MODELS

pytest.importorskip('onnxruntime')

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
CONFIG = osp.join(ROOT, 'configs', 'tfclip_demo.py')
RUNNER = osp.join(ROOT, 'mmtfclip', 'deployment', 'onnx_tracklet_runner.py')
OPTIONS = {'model.head.num_classes': 4, 'model.backbone.num_cams': 2}
# Frames per tracklet (T = 4: one short clip, one exact, padded clips) and
# their sizes (h, w): smaller, equal to and larger than the 64 x 32 input.
TRACKLETS = [(1, (40, 20)), (3, (64, 32)), (4, (70, 30)), (9, (50, 26))]


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('onnx')
    cfg = Config.fromfile(CONFIG)
    cfg.merge_from_dict(OPTIONS)
    torch.manual_seed(0)
    ckpt = str(tmp / 'tiny.pth')
    torch.save({'state_dict': MODELS.build(cfg.model).state_dict()}, ckpt)
    onnx_file = str(tmp / 'tiny.onnx')
    out = subprocess.run([
        sys.executable,
        osp.join(ROOT, 'tools', 'deployment', 'pytorch2onnx.py'), CONFIG, ckpt,
        '--out', onnx_file, '--cfg-options', *(f'{k}={v}'
                                               for k, v in OPTIONS.items())
    ],
                         capture_output=True,
                         text=True,
                         timeout=300,
                         cwd=ROOT)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    folders = []
    rng = np.random.default_rng(0)
    for i, (num, (h, w)) in enumerate(TRACKLETS):
        folder = str(tmp / 'tracklets' / f't{i}')
        os.makedirs(folder)
        for k in range(num):
            img = cv2.resize(
                rng.integers(0, 255, (4, 2, 3), dtype=np.uint8), (w, h))
            cv2.imwrite(osp.join(folder, f'{k + 1}.png'), img)
        folders.append(folder)
    return init_model(CONFIG, ckpt, cfg_options=OPTIONS), onnx_file, folders


def test_dense_clip_indices():
    np.testing.assert_array_equal(dense_clip_indices(1, 4), [[0, 0, 0, 0]])
    np.testing.assert_array_equal(
        dense_clip_indices(6, 4), [[0, 1, 2, 3], [4, 5, 4, 5]])


def test_runner_matches_extract_tracklet_features(exported):
    model, onnx_file, folders = exported
    runner = ONNXTrackletRunner(onnx_file, max_clips=2)
    assert runner.use_camera_ids and runner.num_cams == 2
    assert (runner.clip_len, runner.img_size) == (4, (64, 32))
    camids = [0, 1, 1, 0]
    expected = extract_tracklet_features(model,
                                         [tracklet_frames(f) for f in folders],
                                         camids).numpy()
    got = runner(folders, camids)
    assert got.shape == expected.shape == (4, 128 + 64 + 128)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    # Frames given as arrays (BGR from cv2.imread), PIL images and paths
    # agree.
    arrays = [[cv2.imread(p) for p in tracklet_frames(f)] for f in folders]
    np.testing.assert_allclose(
        runner(arrays, camids, channel_order='bgr'), got, rtol=0, atol=1e-6)
    pil = [[Image.open(p) for p in tracklet_frames(f)] for f in folders]
    np.testing.assert_allclose(runner(pil, camids), got, rtol=0, atol=1e-6)
    normalised = runner([tracklet_frames(f) for f in folders],
                        camids,
                        normalize=True)
    np.testing.assert_allclose(
        normalised,
        F.normalize(torch.from_numpy(expected), dim=1).numpy(),
        rtol=0,
        atol=1e-5)
    with pytest.raises(ValueError, match='uses camera ids'):
        runner(folders)
    with pytest.raises(ValueError, match=r'camids \[2\] are not among'):
        runner(folders[:1], [2])
    with pytest.raises(TypeError, match='frame 0: expected a path'):
        runner([[1.5]], [0])


def test_runner_needs_no_torch(exported, tmp_path):
    """The runner file, loaded on its own, in a process that cannot import
    PyTorch or the rest of mmtfclip."""
    model, onnx_file, folders = exported
    out = str(tmp_path / 'embeddings.npy')
    script = f'''
import importlib.util, sys
import numpy as np

class Refuse:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ('torch', 'mmtfclip', 'mmengine', 'mmcv'):
            raise ImportError('not in this deployment: ' + name)

sys.meta_path.insert(0, Refuse())
spec = importlib.util.spec_from_file_location('runner', {RUNNER!r})
runner = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runner)
embed = runner.ONNXTrackletRunner({onnx_file!r})
np.save({out!r}, embed({folders!r}, [1, 0, 0, 1]))
assert 'torch' not in sys.modules
'''
    run = subprocess.run([sys.executable, '-c', script],
                         capture_output=True,
                         text=True,
                         timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    expected = extract_tracklet_features(model,
                                         [tracklet_frames(f) for f in folders],
                                         [1, 0, 0, 1]).numpy()
    np.testing.assert_allclose(np.load(out), expected, rtol=0, atol=1e-4)
