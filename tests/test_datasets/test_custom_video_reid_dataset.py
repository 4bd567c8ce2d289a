# Copyright (c) mmtfclip contributors. All rights reserved.
import cv2
import numpy as np
import pytest

from mmtfclip.datasets import CustomVideoReIDDataset


def _frames(folder, names):
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        cv2.imwrite(str(folder / name), np.zeros((8, 4, 3), np.uint8))


def test_folders_and_frame_lists(tmp_path):
    root = tmp_path / 'data'
    _frames(root / 'seqs' / 'a b', [f'f{i}.jpg' for i in (1, 2, 10)])
    _frames(root / 'seqs' / 'c', ['x.png', 'y.png', 'z.png'])
    (root / 'train.txt').write_text('# frames pid camid\n'
                                    'seqs/a b 17 0\n'
                                    '\n'
                                    'seqs/c/z.png,seqs/c/x.png 5 2\n'
                                    'seqs/c -1 1\n')
    dataset = CustomVideoReIDDataset(
        data_root=str(root), ann_file='train.txt', split='train')
    first, second = (dataset.get_data_info(i) for i in range(2))
    assert len(dataset) == 2  # the junk line is dropped
    # Natural order in a folder (f2 before f10), file order in a list.
    assert [p.rsplit('/', 1)[1]
            for p in first['frame_paths']] == ['f1.jpg', 'f2.jpg', 'f10.jpg']
    assert [p.rsplit('/', 1)[1]
            for p in second['frame_paths']] == ['z.png', 'x.png']
    assert (first['pid'], second['pid']) == (1, 0)
    assert (first['camid'], second['camid']) == (0, 2)
    assert dataset.metainfo['num_cams'] == 3
    query = CustomVideoReIDDataset(
        data_root=str(root),
        ann_file='train.txt',
        split='query',
        metainfo=dict(num_cams=6))
    assert [query.get_data_info(i)['pid'] for i in range(2)] == [17, 5]
    assert query.metainfo['num_cams'] == 6


@pytest.mark.parametrize('line, error, match', [
    ('seqs/c 3', ValueError, r'line 2: expected "<frames> <pid> <camid>"'),
    ('seqs/c x 0', ValueError, r'line 2: pid and camid must be integers'),
    ('seqs/c 3 -1', ValueError, r'line 2: camid -1 must be >= 0'),
    ('seqs/nothing 3 0', FileNotFoundError, r'line 2: the frame'),
    ('seqs/c/x.png,seqs/c/w.png 3 0', FileNotFoundError, r'w\.png'),
])
def test_bad_lines(tmp_path, line, error, match):
    root = tmp_path / 'data'
    _frames(root / 'seqs' / 'c', ['x.png'])
    (root / 'query.txt').write_text(f'seqs/c 1 0\n{line}\n')
    with pytest.raises(error, match=match):
        CustomVideoReIDDataset(
            data_root=str(root), ann_file='query.txt', split='query')
