# Copyright (c) mmtfclip contributors. All rights reserved.
import contextlib
import logging
import os
import os.path as osp
import shutil
import sys

import cv2
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from mmengine.logging import MMLogger

from mmtfclip.apis import (GalleryIndex, embed_tracklets,
                           extract_tracklet_features, init_model, list_gallery,
                           list_query_tracklets, read_box_track,
                           read_video_tracklet, search, sync_gallery_index)
from mmtfclip.evaluation.functional import compute_distance_matrix

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


@contextlib.contextmanager
def captured_log():
    """The text mmengine's current logger writes meanwhile."""

    class Handler(logging.Handler):
        text = ''

        def emit(self, record):
            Handler.text += record.getMessage() + '\n'

    handler = Handler()
    logger = MMLogger.get_current_instance()
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def write_tracklet(folder, num_frames=3, seed=0, size=(64, 32)):
    """Frames of one smooth random colour pattern (h x w = ``size``)."""
    os.makedirs(folder, exist_ok=True)
    rng = np.random.default_rng(seed)
    for i in range(num_frames):
        img = cv2.resize(
            rng.integers(0, 255, (4, 2, 3), dtype=np.uint8),
            (size[1], size[0]))
        cv2.imwrite(osp.join(folder, f'f{i + 1}.png'), img)


def write_csv(path, text):
    with open(path, 'w') as f:
        f.write(text)
    return str(path)


def test_list_gallery_layouts(tmp_path):
    flat = tmp_path / 'flat'
    for name, seed in (('t10', 0), ('t2', 1)):
        write_tracklet(str(flat / name), seed=seed)
    tracklets = list_gallery(str(flat), num_cams=2)
    assert [osp.basename(t.path) for t in tracklets] == ['t2', 't10']
    assert [t.camid for t in tracklets] == [0, 0]
    assert tracklets[0].camera is None
    assert [osp.basename(p) for p in tracklets[1].frame_paths
            ] == ['f1.png', 'f2.png', 'f3.png']

    cams = tmp_path / 'cams'
    for cam in ('cam10', 'cam2', 'cam3'):
        write_tracklet(str(cams / cam / 'a'))
    tracklets = list_gallery(str(cams))
    assert [(t.camera, t.camid) for t in tracklets] == [('cam2', 0),
                                                        ('cam3', 1),
                                                        ('cam10', 2)]
    with pytest.raises(ValueError, match=r'cam10.* would get id 2'):
        list_gallery(str(cams), num_cams=2)

    write_tracklet(str(cams / 'loose'))
    with pytest.raises(ValueError, match='mixes tracklet folders'):
        list_gallery(str(cams))
    os.makedirs(cams / 'empty')
    with pytest.raises(ValueError, match='empty holds neither'):
        list_gallery(str(cams))


def test_read_box_track_names_bad_rows(tmp_path):
    good = write_csv(tmp_path / 'good.csv',
                     'frame,x,y,w,h\n0,1,2,10,20\n\n3,1.4,2,10,20\n')
    assert read_box_track(good) == [(0, 1, 2, 10, 20, 2), (3, 1, 2, 10, 20, 4)]
    cases = [
        ('frame,x,y,w\n0,1,2,3\n', 'the first row must be the header'),
        ('frame,x,y,w,h\n0,1,2,10,20\n1,a,2,10,20\n', r'row 3: `x` is'),
        ('frame,x,y,w,h\n0,1,2,10,20\n0.5,1,2,10,20\n',
         r'row 3: `frame` is .*an integer'),
        ('frame,x,y,w,h\n0,1,2,10\n', r'row 2: expected 5 values'),
        ('frame,x,y,w,h\n0,1,2,0,20\n', r'row 2: .*width and height > 0'),
        ('frame,x,y,w,h\n4,1,2,10,20\n4,1,2,10,20\n',
         r'row 3: frame 4 does not follow'),
        ('frame,x,y,w,h\n', 'no box under the header'),
    ]
    for i, (text, message) in enumerate(cases):
        path = write_csv(tmp_path / f'bad{i}.csv', text)
        with pytest.raises(ValueError, match=message) as err:
            read_box_track(path)
        assert path in str(err.value)


def test_read_box_track_refuses_bom_and_non_utf8(tmp_path):
    bom = tmp_path / 'bom.csv'
    bom.write_bytes(b'\xef\xbb\xbfframe,x,y,w,h\n0,1,2,10,20\n')
    with pytest.raises(ValueError, match='bom.csv starts with a UTF-8'):
        read_box_track(str(bom))
    latin = tmp_path / 'latin.csv'
    latin.write_bytes(b'frame,x,y,w,h\n0,1,2,10,20\n\xe9\n')
    with pytest.raises(ValueError, match='latin.csv'):
        read_box_track(str(latin))


def write_video(path, num_frames=6, size=(96, 128)):
    """An MJPG .avi whose frame ``i`` is filled with grey level 20 * i."""
    writer = cv2.VideoWriter(
        str(path), cv2.VideoWriter_fourcc(*'MJPG'), 10, (size[1], size[0]))
    for i in range(num_frames):
        frame = np.full((size[0], size[1], 3), 20 * i, np.uint8)
        frame[10:70, 20:50] = (0, 0, 250)  # BGR red: the person
        writer.write(frame)
    writer.release()
    return str(path)


def test_read_video_tracklet(tmp_path):
    video = write_video(tmp_path / 'v.avi')
    boxes = write_csv(tmp_path / 'track.csv',
                      'frame,x,y,w,h\n1,20,10,30,60\n4,18,8,34,64\n')
    crops = read_video_tracklet(video, boxes)
    # Resized to the median box size; RGB, the person's red in the middle.
    assert crops.shape == (2, 62, 32, 3) and crops.dtype == np.uint8
    assert crops[0, 31, 16, 0] > 200 and crops[0, 31, 16, 2] < 50
    assert abs(int(crops[1, 0, 0, 1]) - 80) < 10  # frame 4: grey 80

    past = write_csv(tmp_path / 'past.csv',
                     'frame,x,y,w,h\n1,20,10,30,60\n9,20,10,30,60\n')
    with pytest.raises(
            ValueError,
            match=r'past.csv row 3: frame 9 is past '
            r'the end of .*v.avi, which has 6 frames'):
        read_video_tracklet(video, past)
    outside = write_csv(tmp_path / 'out.csv', 'frame,x,y,w,h\n'
                        '0,20,10,30,60\n2,100,10,30,60\n')
    with pytest.raises(
            ValueError,
            match=r'out.csv row 3: box x=100 .*'
            r'outside frame 2 \(128 x 96'):
        read_video_tracklet(video, outside)


@pytest.fixture(scope='module')
def model():
    torch.manual_seed(0)
    return init_model(
        osp.join(REPO, 'configs', 'tfclip_demo.py'),
        cfg_options={'model.head.num_classes': 4})


def test_embed_tracklets_in_batches(model, tmp_path):
    for i in range(5):
        write_tracklet(str(tmp_path / 'g' / 'cam1' / f't{i}'), 2 + i, seed=i)
    write_tracklet(str(tmp_path / 'g' / 'cam2' / 'x'), 3, seed=9)
    gallery = list_gallery(str(tmp_path / 'g'), model.num_cams)
    frames = [t.frame_paths for t in gallery]
    camids = [t.camid for t in gallery]
    batched = embed_tracklets(
        model, frames, camids, batch_size=2, show_progress=False)
    assert batched.shape == (6, 128 + 64 + 128)  # [class, proj, temporal]
    torch.testing.assert_close(
        batched, extract_tracklet_features(model, frames, camids))


def clustered(num, dim, seed, num_ids=None):
    """Synthetic embeddings: noisy copies of ``num_ids`` identity centres."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((num_ids or max(num // 10, 1), dim))
    rows = centres[rng.integers(0, len(centres), num)]
    return (rows + 0.5 * rng.standard_normal((num, dim))).astype(np.float32)


@pytest.mark.parametrize('dist_metric,feat_norm', [('euclidean', True),
                                                   ('cosine', False),
                                                   ('euclidean', False)])
def test_faiss_returns_the_exact_top10_on_10k(tmp_path, dist_metric,
                                              feat_norm):
    pytest.importorskip('faiss')
    gallery = clustered(10_000, 128, seed=0)
    queries = clustered(20, 128, seed=1, num_ids=1000)
    index = GalleryIndex(
        str(tmp_path / 'index'),
        key=dict(test=1),
        dist_metric=dist_metric,
        feat_norm=feat_norm,
        shard_rows=4096)
    index.add(gallery, [dict(tracklet=f't{i}') for i in range(10_000)])
    exact_idx, exact_dist = index.search(queries, 10)
    # The exact search ranks as ReIDMetric does: compute_distance_matrix.
    q, g = torch.from_numpy(queries), torch.from_numpy(gallery)
    if feat_norm:
        q, g = F.normalize(q, dim=1), F.normalize(g, dim=1)
    dist = compute_distance_matrix(q, g, dist_metric).numpy()
    np.testing.assert_array_equal(exact_idx, np.argsort(dist, axis=1)[:, :10])
    np.testing.assert_allclose(
        exact_dist, np.sort(dist, axis=1)[:, :10], rtol=1e-5, atol=1e-5)

    # 'auto' is a flat (exact) faiss index at this size; written and read
    # back with the index.
    faiss_idx, faiss_dist = index.search(queries, 10, engine='faiss')
    np.testing.assert_array_equal(faiss_idx, exact_idx)
    np.testing.assert_allclose(faiss_dist, exact_dist, rtol=1e-4, atol=1e-4)
    loaded, why = GalleryIndex.load(
        str(tmp_path / 'index'), dict(test=1), dist_metric, feat_norm)
    assert why == '' and loaded.num_rows == 10_000
    loaded.build_faiss()
    assert loaded.has_faiss
    np.testing.assert_array_equal(
        loaded.search(queries, 10, engine='faiss')[0], exact_idx)
    # An inverted file visiting all its lists is exact too.
    ivf = GalleryIndex(dist_metric=dist_metric, feat_norm=feat_norm)
    ivf.add(gallery, [{}] * len(gallery))
    ivf.build_faiss('IVF64,Flat')
    np.testing.assert_array_equal(
        ivf.search(queries, 10, engine='faiss', nprobe=64)[0], exact_idx)


def test_gallery_index_refuses_bad_input(tmp_path, monkeypatch):
    index = GalleryIndex()
    bad = np.ones((3, 4), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match='1 rows hold NaN'):
        index.add(bad, [{}] * 3)
    index.add(np.ones((3, 4)), [{}] * 3)
    with pytest.raises(ValueError, match='holds 4-d embeddings; got 5-d'):
        index.add(np.ones((1, 5)), [{}])
    with pytest.raises(ValueError, match=r'Queries must be \[Q, 4\]'):
        index.search(np.ones((1, 5)), 2)
    other = tmp_path / 'photos'
    other.mkdir()
    (other / 'holiday.jpg').write_bytes(b'x')
    with pytest.raises(FileExistsError, match='not a gallery index'):
        GalleryIndex.prepare_root(str(other))
    # faiss is optional: its absence is said in words.
    monkeypatch.setitem(sys.modules, 'faiss', None)
    with pytest.raises(ImportError, match='pip install faiss-cpu'):
        index.search(np.ones((1, 4)), 2, engine='faiss')


class CountingEmbedder:
    """Stands for extract_tracklet_features, counting the tracklets."""

    def __init__(self):
        self.count = 0

    def __call__(self, model, tracklets, camids=None, batch_size=8):
        self.count += len(tracklets)
        return extract_tracklet_features(
            model, tracklets, camids, batch_size=batch_size)


def test_sync_gallery_index_reuses_extends_and_rebuilds(
        model, tmp_path, monkeypatch):
    counter = CountingEmbedder()
    monkeypatch.setattr(search, 'extract_tracklet_features', counter)
    root = str(tmp_path / 'index')
    for i in range(4):
        write_tracklet(str(tmp_path / 'g' / 'cam1' / f't{i}'), 2 + i, seed=i)
    ckpt = str(tmp_path / 'model.pth')
    torch.save({'state_dict': model.state_dict()}, ckpt)

    def sync(**kwargs):
        gallery = list_gallery(str(tmp_path / 'g'), model.num_cams)
        counter.count = 0
        index = sync_gallery_index(
            root, model, ckpt, gallery, 2, show_progress=False, **kwargs)
        return gallery, index

    with captured_log() as log:
        gallery, index = sync(shard_rows=3)
    assert counter.count == 4 and index.num_rows == 4
    assert 'there is no index' in log.text
    expected = extract_tracklet_features(model,
                                         [t.frame_paths for t in gallery],
                                         [t.camid for t in gallery])
    np.testing.assert_allclose(
        np.concatenate(index._vectors),
        F.normalize(expected, dim=1).numpy(),
        atol=1e-6)

    # Unchanged: read back, nothing embedded.
    _, index = sync()
    assert counter.count == 0 and index.num_rows == 4
    # A new tracklet: only it is embedded, appended as a shard.
    write_tracklet(str(tmp_path / 'g' / 'cam1' / 't9'), 3, seed=9)
    with captured_log() as log:
        _, index = sync(faiss_factory='auto')
    assert counter.count == 1 and index.num_rows == 5
    assert '4 tracklets read, 1 new to embed' in log.text
    assert [r['tracklet'] for r in index.records[-1:]
            ] == [str(tmp_path / 'g' / 'cam1' / 't9')]
    # The faiss index was extended and written with it: read, not rebuilt.
    _, index = sync(faiss_factory='auto')
    assert counter.count == 0 and index.has_faiss

    # A truncated shard is reported and the index rebuilt.
    with open(osp.join(root, 'shard_00000.npy'), 'r+b') as f:
        f.truncate(64)
    with captured_log() as log:
        _, index = sync()
    assert counter.count == 5
    assert 'shard_00000.npy does not match the SHA-256' in log.text
    # A setting that changes the embedding makes it stale.
    model.cfg.model.backbone.sie_coef = 2.0
    try:
        with captured_log() as log:
            sync()
    finally:
        model.cfg.model.backbone.sie_coef = 1.0
    assert counter.count == 5
    assert 'model.backbone.sie_coef: 1.0 -> 2.0' in log.text
    # So does another checkpoint content, and a changed tracklet.
    torch.save({'state_dict': model.state_dict(), 'meta': {}}, ckpt)
    with captured_log() as log:
        sync()
    assert counter.count == 5 and 'checkpoint_sha256' in log.text
    os.remove(str(tmp_path / 'g' / 'cam1' / 't0' / 'f2.png'))
    with captured_log() as log:
        sync()
    assert counter.count == 5 and 't0 changed' in log.text
    shutil.rmtree(str(tmp_path / 'g' / 'cam1' / 't9'))
    with captured_log() as log:
        sync()
    assert 't9 no longer in the gallery' in log.text


def test_list_query_tracklets(tmp_path):
    write_tracklet(str(tmp_path / 'one'))
    ((path, frames), ) = list_query_tracklets(str(tmp_path / 'one'))
    assert path == str(tmp_path / 'one') and len(frames) == 3
    for name in ('q10', 'q2'):
        write_tracklet(str(tmp_path / 'many' / name))
    assert [
        osp.basename(p)
        for p, _ in list_query_tracklets(str(tmp_path / 'many'))
    ] == ['q2', 'q10']
    write_tracklet(str(tmp_path / 'cams' / 'cam1' / 'q'))
    with pytest.raises(ValueError, match='cam1 holds no image'):
        list_query_tracklets(str(tmp_path / 'cams'))
