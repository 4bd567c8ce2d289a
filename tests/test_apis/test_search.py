# Copyright (c) mmtfclip contributors. All rights reserved.
import os
import os.path as osp

import cv2
import numpy as np
import pytest
import torch

from mmtfclip.apis import (embed_tracklets, extract_tracklet_features,
                           gallery_cache_key, init_model, list_gallery,
                           load_gallery_cache, rank_gallery, read_box_track,
                           read_video_tracklet, save_gallery_cache)

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))


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


def test_embed_rank_and_cache(model, tmp_path):
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

    # The gallery's own tracklet 3 as the query comes first, at distance 0.
    order, dists = rank_gallery(batched[3], batched)
    assert order[0] == 3 and dists[0] < 1e-5
    assert np.all(np.diff(dists) >= 0) and sorted(order) == list(range(6))

    ckpt = tmp_path / 'model.pth'
    ckpt.write_bytes(b'weights')
    cache = str(tmp_path / 'cache.npz')
    key = gallery_cache_key(str(ckpt), model, gallery)
    assert load_gallery_cache(cache, key) is None
    save_gallery_cache(cache, key, batched)
    torch.testing.assert_close(load_gallery_cache(cache, key), batched)
    ckpt.write_bytes(b'other weights')
    assert load_gallery_cache(cache,
                              gallery_cache_key(str(ckpt), model,
                                                gallery)) is None
    assert load_gallery_cache(
        cache, gallery_cache_key(str(ckpt), model, gallery[:-1])) is None
