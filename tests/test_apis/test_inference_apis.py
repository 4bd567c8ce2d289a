# Copyright (c) mmtfclip contributors. All rights reserved.
import os.path as osp

import mmcv
import numpy as np
import pytest
import torch
from mmengine.config import Config
from mmpretrain.structures import DataSample

from mmtfclip.apis import (CheckpointMismatchError, extract_tracklet_features,
                           init_model)
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
