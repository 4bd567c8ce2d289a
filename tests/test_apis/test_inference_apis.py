# Copyright (c) mmtfclip contributors. All rights reserved.
import os.path as osp
from pathlib import Path

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample
from PIL import Image

from mmtfclip.apis import (CheckpointMismatchError, TrackletFeatureExtractor,
                           extract_tracklet_features, init_model)
from mmtfclip.registry import MODELS
from mmtfclip.testing import tiny_clip_arch

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
T, H, W = 4, 64, 32


def tiny_cfg(num_cams=3,
             img_size=(H, W),
             stride=16,
             num_ids=4,
             num_frames=T) -> Config:
    cfg = Config.fromfile(osp.join(REPO, 'configs', 'tfclip_mars.py'))
    # A real config names CLIP weights; a full checkpoint must not need them.
    cfg.model.backbone.update(
        arch=tiny_clip_arch(),
        img_size=img_size,
        stride_size=stride,
        num_cams=num_cams,
        pretrained='missing/ViT-B-16.pt')
    cfg.model.neck.update(embed_dims=64, num_heads=2, num_frames=num_frames)
    cfg.model.head.update(
        num_classes=num_ids, in_channels=64, proj_channels=32)
    cfg.model.head.ssp.num_heads = 2
    cfg.test_pipeline = [
        dict(
            type='SampleTrackletFrames',
            clip_len=num_frames,
            mode='dense',
            test_mode=True),
        dict(type='LoadTrackletFrames'),
        dict(type='TrackletResize', scale=(W, H)),
        dict(type='PackTrackletInputs'),
    ]
    return cfg


@pytest.fixture(scope='module')
def checkpoint(tmp_path_factory):
    """A Runner-style checkpoint of the tiny model, with its config."""
    cfg = tiny_cfg()
    cfg.model.backbone.pretrained = None
    torch.manual_seed(0)
    model = MODELS.build(cfg.model)
    model.head.set_memory(torch.randn(4, 32))
    path = str(tmp_path_factory.mktemp('ckpt') / 'epoch_1.pth')
    torch.save(
        dict(
            state_dict=model.state_dict(),
            meta=dict(cfg=cfg.pretty_text, epoch=1)), path)
    return path, model.eval()


def test_init_model_loads_without_clip_weights(checkpoint):
    path, reference = checkpoint
    model = init_model(tiny_cfg(), path, device='cpu')
    assert not model.training and model.cfg.model.head.num_classes == 4
    for key, value in reference.state_dict().items():
        assert torch.equal(model.state_dict()[key], value), key
    with pytest.raises(FileNotFoundError, match='model.backbone.pretrained'):
        init_model(tiny_cfg())


def test_init_model_lists_every_mismatch_in_words(checkpoint):
    path, _ = checkpoint
    cfg = tiny_cfg(num_cams=6, stride=12, num_ids=5, num_frames=8)
    with pytest.raises(CheckpointMismatchError) as err:
        init_model(cfg, path)
    text = str(err.value)
    assert "camera embedding is for 3 cameras, the config's for 6" in text
    assert 'positional embedding has 8 patch positions but the config ' \
        'gives 10' in text
    assert 'stride_size is (12, 12) in the config but was 16' in text
    assert 'trained with 4 identities, the config has 5' in text
    assert 'clips of 4 frames, the config has 8' in text
    assert 'KeyError' not in text and 'size mismatch' not in text


def test_init_model_sie_on_off_and_input_size(checkpoint):
    path, _ = checkpoint
    with pytest.raises(
            CheckpointMismatchError,
            match=r'camera embedding \(SIE\) for 3 cameras but '
            'the config has none'):
        init_model(tiny_cfg(num_cams=0), path)
    with pytest.raises(
            CheckpointMismatchError,
            match=r'img_size is \(80, 32\) in the config'):
        init_model(tiny_cfg(img_size=(80, 32)), path)
    untied = tiny_cfg()
    untied.model.head.share_frame_classifier = False
    with pytest.raises(
            CheckpointMismatchError,
            match=r"missing from the checkpoint: \['head\."
            r"frame_classifier\.weight'\]"):
        init_model(untied, path)


def _write_frames(folder, frames):
    paths = []
    for k, frame in enumerate(frames):
        path = osp.join(folder, f'{k:03d}.png')
        mmcv.imwrite(frame[..., ::-1], path)  # stored as BGR by OpenCV
        paths.append(path)
    return paths


def test_extract_tracklet_features(checkpoint, tmp_path):
    path, reference = checkpoint
    model = init_model(tiny_cfg(), path)
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (n, H, W, 3), dtype=np.uint8) for n in (6, 3, 9)
    ]
    feats = extract_tracklet_features(model, arrays, camids=[0, 2, 1])
    assert feats.shape == (3, 64 + 32 + 64) and feats.dtype == torch.float32
    # The second tracklet (3 frames) is one clip padded by its own frames.
    clip = torch.from_numpy(arrays[1][[0, 1, 2, 0]]).permute(0, 3, 1, 2)
    x = model.data_preprocessor(dict(inputs=[clip]))['inputs']
    with torch.no_grad():
        sample = DataSample().set_gt_label(0)
        sample.set_field(torch.tensor(2), 'camid', field_type='data')
        expected = reference(x, [sample], mode='tensor')[0]
    torch.testing.assert_close(feats[1], expected)
    # Frame files give the same features as the arrays.
    folders = [tmp_path / str(i) for i in range(3)]
    paths = []
    for folder, frames in zip(folders, arrays):
        folder.mkdir()
        paths.append(_write_frames(str(folder), frames))
    from_files = extract_tracklet_features(
        model, paths, camids=[0, 2, 1], batch_size=2)
    torch.testing.assert_close(from_files, feats)


def test_extract_tracklet_features_errors(checkpoint):
    model = init_model(tiny_cfg(), checkpoint[0])
    frames = np.zeros((4, H, W, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match='pass `camids`'):
        extract_tracklet_features(model, [frames])
    with pytest.raises(ValueError, match='uint8 RGB'):
        extract_tracklet_features(model, [frames.astype(np.float32)], [0])
    with pytest.raises(ValueError, match='2 camids for 1'):
        extract_tracklet_features(model, [frames], [0, 1])


def _cosine(a, b):
    return torch.nn.functional.cosine_similarity(a, b, dim=1)


def test_every_tracklet_form_gives_the_same_embedding(checkpoint, tmp_path):
    """A folder, a path list, PIL images, RGB crops and one [T, H, W, 3]
    array of the same frames embed alike; BGR arrays with
    channel_order='bgr' equal the RGB ones."""
    model = init_model(tiny_cfg(), checkpoint[0])
    rng = np.random.default_rng(1)
    frames = rng.integers(0, 256, (6, H, W, 3), dtype=np.uint8)
    folder = tmp_path / 'tracklet'
    folder.mkdir()
    paths = _write_frames(str(folder), frames)
    forms = dict(
        folder=str(folder),
        folder_path=folder,
        paths=paths,
        path_objects=[Path(p) for p in paths],
        pil=[Image.open(p) for p in paths],
        crops=list(frames),
        array=frames)
    feats = extract_tracklet_features(
        model, list(forms.values()), camids=[1] * len(forms))
    for name, feat in zip(forms, feats):
        assert _cosine(feat[None], feats[:1]).item() >= 0.9999, name
    bgr = frames[..., ::-1]
    from_bgr = extract_tracklet_features(
        model, [bgr, list(bgr)], camids=[1, 1], channel_order='bgr')
    torch.testing.assert_close(from_bgr, feats[-2:], rtol=0, atol=0)
    # Read as RGB, BGR arrays are another tracklet.
    as_rgb = extract_tracklet_features(model, [bgr], camids=[1])
    assert _cosine(as_rgb, feats[-1:]).item() < 0.9999


def test_detector_crops_of_different_sizes(checkpoint, tmp_path):
    model = init_model(tiny_cfg(), checkpoint[0])
    rng = np.random.default_rng(2)
    crops = [
        rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        for h, w in ((70, 30), (64, 32), (90, 41), (50, 25), (64, 29))
    ]
    folder = tmp_path / 'crops'
    folder.mkdir()
    paths = _write_frames(str(folder), crops)
    feats = extract_tracklet_features(
        model, [crops, paths, [Image.fromarray(c) for c in crops]],
        camids=[0, 0, 0])
    assert feats.shape == (3, 64 + 32 + 64)
    assert _cosine(feats[:1], feats[1:]).min().item() >= 0.9999


def test_extract_tracklet_features_refuses_other_inputs(checkpoint, tmp_path):
    model = init_model(tiny_cfg(), checkpoint[0])
    frames = np.zeros((4, H, W, 3), dtype=np.uint8)
    with pytest.raises(TypeError, match='Tracklet 1 is a int'):
        extract_tracklet_features(model, [frames, 7], [0, 0])
    with pytest.raises(TypeError, match='Tracklet 0 is a Tensor'):
        extract_tracklet_features(model, [torch.zeros(4, H, W, 3)], [0])
    with pytest.raises(TypeError, match='frame 2 is a str but frame 0 is a'):
        extract_tracklet_features(model, [[frames[0], frames[1], 'a.png']],
                                  [0])
    with pytest.raises(TypeError, match='Tracklet 0: frame 0 is a dict'):
        extract_tracklet_features(model, [[{}]], [0])
    with pytest.raises(ValueError, match='Tracklet 0, frame 1: an array'):
        extract_tracklet_features(model, [[frames[0], frames[1, ..., 0]]], [0])
    with pytest.raises(TypeError, match='wrap a single tracklet'):
        extract_tracklet_features(model, str(tmp_path), [0])
    with pytest.raises(FileNotFoundError, match='Tracklet 0: .* not a folder'):
        extract_tracklet_features(model, [str(tmp_path / 'nothing')], [0])
    with pytest.raises(ValueError, match="'rgb' or 'bgr'"):
        extract_tracklet_features(model, [frames], [0], channel_order='rgba')
    with pytest.raises(ValueError, match='camid 3 is not a camera'):
        extract_tracklet_features(model, [frames], [3])
    with pytest.raises(ValueError, match='Tracklet 0 has no frame'):
        extract_tracklet_features(model, [[]], [0])


def test_tracklet_feature_extractor(checkpoint):
    path, _ = checkpoint
    cfg = tiny_cfg()
    extractor = TrackletFeatureExtractor(cfg, path, device='cpu')
    frames = np.random.default_rng(3).integers(
        0, 256, (5, H, W, 3), dtype=np.uint8)
    expected = extract_tracklet_features(
        init_model(cfg, path), [frames], camids=[2])
    torch.testing.assert_close(extractor([frames], camids=[2]), expected)
