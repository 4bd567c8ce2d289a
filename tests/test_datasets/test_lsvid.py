# Copyright (c) mmtfclip contributors. All rights reserved.
import h5py
import numpy as np
import pytest
from mmengine.config import Config

from helpers.datasets import write_lsvid_layout
from mmtfclip.datasets import LSVID
from mmtfclip.registry import DATASETS


def _items(dataset):
    return [dataset.get_data_info(i) for i in range(len(dataset))]


@pytest.mark.parametrize('info_prefix', [False, True])
def test_splits_pids_cameras_and_order(tmp_path, info_prefix):
    root = tmp_path / 'lsvid'
    expected = write_lsvid_layout(str(root), info_prefix=info_prefix)
    train = _items(LSVID(data_root=str(root), split='train'))
    query = _items(LSVID(data_root=str(root), split='query'))
    gallery = _items(LSVID(data_root=str(root), split='gallery'))

    # Training pids 1..3 become 0..2, in list order.
    assert [(d['pid'], d['camid'], len(d['frame_paths'])) for d in train
            ] == [(pid - 1, cam, n) for pid, cam, n in expected['train']]
    for items, key in ((query, 'query'), (gallery, 'gallery')):
        assert [(d['pid'], d['camid'], len(d['frame_paths']))
                for d in items] == expected[key]
    # The junk line (pid -1) is dropped.
    assert all(d['pid'] != -1 for d in gallery)
    for d in train + query + gallery:
        names = [p.rsplit('/', 1)[1] for p in d['frame_paths']]
        assert names == sorted(names)
        assert int(names[0].split('_')[2]) == d['camid'] + 1


def test_train_chunks(tmp_path):
    root = tmp_path / 'lsvid'
    write_lsvid_layout(str(root))
    train = _items(
        LSVID(data_root=str(root), split='train', train_chunk_len=3))
    # 7 frames -> 3 + 4 (the remainder joins the last chunk); 5 -> 5.
    assert [len(d['frame_paths']) for d in train[:3]] == [3, 4, 5]
    assert train[0]['frame_paths'][-1] < train[1]['frame_paths'][0]
    assert train[0]['pid'] == train[1]['pid'] == train[2]['pid'] == 0
    assert [d['first_frame'] for d in train[:3]] == [0, 3, 0]
    assert [d['source_tracklet'] for d in train[:3]] == [0, 0, 1]
    # The test splits are never cut.
    query = LSVID(data_root=str(root), split='query', train_chunk_len=1)
    assert len(query.get_data_info(0)['frame_paths']) == 3
    assert 'source_tracklet' not in query.get_data_info(0)


def test_train_chunks_dropping_short_tracklets(tmp_path, monkeypatch):
    root = tmp_path / 'lsvid'
    expected = write_lsvid_layout(str(root))
    assert [n for _, _, n in expected['train']] == [7, 5] * 3
    logged = []
    monkeypatch.setattr('mmtfclip.datasets.base_video_reid_dataset.print_log',
                        lambda msg, **kwargs: logged.append(str(msg)))

    # Chunks of 6: 7 frames -> one chunk of 7; 5 frames -> dropped (the
    # authors) or kept whole (ours).
    dropped = _items(
        LSVID(
            data_root=str(root),
            split='train',
            train_chunk_len=6,
            drop_short_tracklets=True))
    assert [len(d['frame_paths']) for d in dropped] == [7, 7, 7]
    assert [d['source_tracklet'] for d in dropped] == [0, 2, 4]
    assert [d['pid'] for d in dropped] == [0, 1, 2]
    assert any('3 items cut from 6 tracklets (3 dropped' in m for m in logged)
    kept = _items(LSVID(data_root=str(root), split='train', train_chunk_len=6))
    assert [len(d['frame_paths']) for d in kept] == [7, 5] * 3

    # Chunks of 3, dropping: 7 -> 3 + 4, 5 -> 5; nothing is short.
    chunks = _items(
        LSVID(
            data_root=str(root),
            split='train',
            train_chunk_len=3,
            drop_short_tracklets=True))
    assert [len(d['frame_paths']) for d in chunks] == [3, 4, 5] * 3

    # Chunks of 8 drop every tracklet: refused, not an empty set.
    with pytest.raises(ValueError, match='left no item'):
        LSVID(
            data_root=str(root),
            split='train',
            train_chunk_len=8,
            drop_short_tracklets=True)
    with pytest.raises(ValueError, match='needs train_chunk_len'):
        LSVID(data_root=str(root), split='train', drop_short_tracklets=True)


def test_list_line_without_pid(tmp_path):
    root = tmp_path / 'lsvid'
    write_lsvid_layout(str(root))
    path = root / 'list_sequence' / 'list_seq_train.txt'
    lines = path.read_text().splitlines()
    lines[2] = lines[2].split()[0]
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(
            ValueError, match=r'list_seq_train\.txt, line 3: expected'):
        LSVID(data_root=str(root), split='train')


def test_missing_frames_and_bad_query(tmp_path):
    root = tmp_path / 'lsvid'
    write_lsvid_layout(str(root))
    path = root / 'list_sequence' / 'list_seq_test.txt'
    lines = path.read_text().splitlines()
    lines[1] = 'tracklet_test/0101/nothing_here 101'
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(
            FileNotFoundError, match=r'list_seq_test\.txt, line 2: no frame'):
        LSVID(data_root=str(root), split='gallery')

    write_lsvid_layout(str(root))
    with h5py.File(root / 'test' / 'data' / 'info_test.mat', 'w') as f:
        f.create_dataset('query', data=np.array([[1.0, 99.0]]))
    with pytest.raises(ValueError, match=r'query\[1\] = 99 is out of range'):
        LSVID(data_root=str(root), split='query')


def test_builds_from_config(tmp_path):
    root = tmp_path / 'lsvid'
    expected = write_lsvid_layout(str(root))
    cfg = Config.fromfile('configs/_base_/datasets/lsvid.py')
    cfg.train_dataloader.dataset.data_root = str(root)
    assert cfg.train_dataloader.dataset.train_chunk_len == 48
    assert cfg.train_dataloader.dataset.drop_short_tracklets is True
    # Every training tracklet of the layout is shorter than 48 frames.
    with pytest.raises(ValueError, match='left no item'):
        DATASETS.build(cfg.train_dataloader.dataset)
    cfg = Config.fromfile('configs/_base_/datasets/lsvid_tracklets.py')
    cfg.train_dataloader.dataset.data_root = str(root)
    train = DATASETS.build(cfg.train_dataloader.dataset)
    assert len(train) == len(expected['train'])
    for dataset in cfg.test_dataloader.dataset.datasets:
        dataset.data_root = str(root)
    test_set = DATASETS.build(cfg.test_dataloader.dataset)
    assert len(test_set) == len(expected['query']) + len(expected['gallery'])
    item = test_set[0]
    assert item['inputs'].shape == (1, 8, 3, 256, 128)
    assert cfg.test_evaluator.query_in_gallery is True
