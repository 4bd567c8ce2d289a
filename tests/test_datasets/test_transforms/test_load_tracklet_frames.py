# Copyright (c) mmtfclip contributors. All rights reserved.
import logging
import sys
import types

import cv2
import numpy as np
import pytest
from mmengine.logging import MMLogger

from mmtfclip.datasets.transforms import LoadTrackletFrames


def _tracklet(tmp_path, num=5, ext='png', size=(12, 6)):
    paths = []
    for i in range(num):
        rgb = np.zeros(size + (3, ), np.uint8)
        rgb[..., 0] = 200  # red
        rgb[..., 1] = 10 * i  # green carries the frame number
        path = tmp_path / f'f{i:03d}.{ext}'
        cv2.imwrite(str(path), rgb[..., ::-1])
        paths.append(str(path))
    return dict(
        frame_paths=paths,
        frame_inds=np.arange(num),
        tracklet_id=7,
        split='query',
        pid=12)


def test_loads_rgb_frames_in_order(tmp_path):
    results = _tracklet(tmp_path)
    results['frame_inds'] = np.array([4, 0, 0, 2])
    out = LoadTrackletFrames()(results)
    imgs = out['imgs']
    assert isinstance(imgs, np.ndarray) and imgs.dtype == np.uint8
    assert imgs.shape == (4, 12, 6, 3)
    assert (imgs[..., 0] == 200).all() and (imgs[..., 2] == 0).all()
    assert imgs[:, 0, 0, 1].tolist() == [40, 0, 0, 20]
    assert out['img_shape'] == (12, 6) == out['ori_shape']
    # A repeated frame is a separate copy: editing one leaves the other.
    imgs[1] = 0
    assert (imgs[2, ..., 0] == 200).all()


def test_pillow_backend_and_mixed_sizes(tmp_path):
    results = _tracklet(tmp_path, num=2, ext='jpg')
    cv2.imwrite(results['frame_paths'][1], np.zeros((20, 10, 3), np.uint8))
    out = LoadTrackletFrames(imdecode_backend='pillow')(results)
    assert isinstance(out['imgs'], list)
    assert [f.shape for f in out['imgs']] == [(12, 6, 3), (20, 10, 3)]


def test_missing_frame_names_frame_and_tracklet(tmp_path):
    results = _tracklet(tmp_path)
    (tmp_path / 'f002.png').unlink()
    with pytest.raises(OSError) as info:
        LoadTrackletFrames()(results)
    message = str(info.value)
    assert 'f002.png' in message and 'tracklet 7' in message
    assert 'query' in message


def test_corrupt_frame_raises(tmp_path):
    results = _tracklet(tmp_path)
    (tmp_path / 'f001.png').write_bytes(b'not an image')
    with pytest.raises(OSError, match=r'f001\.png.*not a decodable'):
        LoadTrackletFrames()(results)


def test_skip_replaces_with_nearest_readable_frame(tmp_path, monkeypatch):
    results = _tracklet(tmp_path)
    (tmp_path / 'f002.png').unlink()
    (tmp_path / 'f003.png').write_bytes(b'')
    logger = MMLogger.get_current_instance()
    logged = []
    original = logger.log

    def log(level, msg, *args, **kwargs):
        logged.append((level, str(msg)))
        original(level, msg, *args, **kwargs)

    monkeypatch.setattr(logger, 'log', log)
    results['frame_inds'] = np.array([0, 2, 3, 4])
    out = LoadTrackletFrames(on_bad_frame='skip')(results)
    # 2 -> 1 (i-1 first), 3 -> 4 (2 is bad, 4 is next).
    assert out['frame_inds'].tolist() == [0, 1, 4, 4]
    assert out['imgs'][:, 0, 0, 1].tolist() == [0, 10, 40, 40]
    warned = [m for level, m in logged if level == logging.WARNING]
    assert any('f002.png' in m for m in warned)
    assert any('f003.png' in m for m in warned)


def test_skip_with_no_readable_frame_is_an_error(tmp_path):
    results = _tracklet(tmp_path, num=2)
    for path in results['frame_paths']:
        open(path, 'wb').close()
    with pytest.raises(OSError, match='tracklet 7 .* no readable frame'):
        LoadTrackletFrames(on_bad_frame='skip')(results)


def test_turbojpeg_errors_are_clear(monkeypatch):
    monkeypatch.setitem(sys.modules, 'turbojpeg', None)
    with pytest.raises(ImportError, match='needs PyTurboJPEG'):
        LoadTrackletFrames(imdecode_backend='turbojpeg')

    class NoLibrary:

        def __init__(self):
            raise RuntimeError('Unable to locate turbojpeg library')

    fake = types.ModuleType('turbojpeg')
    fake.TurboJPEG = NoLibrary
    monkeypatch.setitem(sys.modules, 'turbojpeg', fake)
    with pytest.raises(RuntimeError, match='cannot load the libjpeg-turbo'):
        LoadTrackletFrames(imdecode_backend='turbojpeg')


def test_turbojpeg_decodes_like_cv2(tmp_path):
    turbojpeg = pytest.importorskip('turbojpeg')
    try:
        turbojpeg.TurboJPEG()
    except (OSError, RuntimeError):
        pytest.skip('libjpeg-turbo is not installed')
    results = _tracklet(tmp_path, num=2, ext='jpg')
    fast = LoadTrackletFrames(imdecode_backend='turbojpeg')(dict(results))
    ref = LoadTrackletFrames()(dict(results))
    assert np.abs(fast['imgs'].astype(int) - ref['imgs']).max() <= 2


def test_bad_arguments():
    with pytest.raises(ValueError, match='on_bad_frame'):
        LoadTrackletFrames(on_bad_frame='zero')
    with pytest.raises(ValueError, match='imdecode_backend'):
        LoadTrackletFrames(imdecode_backend='tifffile')
    assert "on_bad_frame='skip'" in repr(
        LoadTrackletFrames(on_bad_frame='skip'))
