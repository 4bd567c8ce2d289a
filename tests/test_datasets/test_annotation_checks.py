# Copyright (c) mmtfclip contributors. All rights reserved.
"""Inconsistent or unreadable annotations are refused, naming file and row."""
import json

import cv2
import numpy as np
import pytest
from scipy.io import loadmat, savemat

from helpers.datasets import (write_ilidsvid_layout, write_lsvid_layout,
                              write_prid2011_layout)
from mmtfclip.datasets import (LSVID, MARS, PRID2011, CustomVideoReIDDataset,
                               iLIDSVID)


def _edit_table(root, name, key, edit):
    path = root / 'info' / name
    table = loadmat(str(path))[key]
    edit(table)
    savemat(str(path), {key: table})


def test_mars_duplicate_row(tiny_mars):
    root, _ = tiny_mars

    def repeat(table):
        table[1] = table[0]

    _edit_table(root, 'tracks_train_info.mat', 'track_train_info', repeat)
    with pytest.raises(
            ValueError,
            match=r'tracks_train_info\.mat, row 2 repeats .*'
            r'tracks_train_info\.mat, row 1 \(the same start and end'):
        MARS(data_root=str(root), split='train')


def test_mars_pid_column_contradicts_names(tiny_mars):
    root, _ = tiny_mars

    def relabel(table):
        assert table[0, 2] == 1
        table[0, 2] = 3

    _edit_table(root, 'tracks_train_info.mat', 'track_train_info', relabel)
    with pytest.raises(
            ValueError,
            match=r'tracks_train_info\.mat, row 1: the pid column says 3 '
            r"but the frame names \(0001C1T0001F001\.jpg, \.\.\.\) say "
            r"person '0001'"):
        MARS(data_root=str(root), split='train')


def test_mars_real_person_marked_junk(tiny_mars):
    root, _ = tiny_mars

    def junk(table):
        table[0, 2] = -1

    _edit_table(root, 'tracks_train_info.mat', 'track_train_info', junk)
    with pytest.raises(
            ValueError,
            match=r"row 1: the pid column says -1 \(junk\) but the frame "
            r"names say person '0001'"):
        MARS(data_root=str(root), split='train')


def test_mars_camera_column_contradicts_names(tiny_mars):
    root, _ = tiny_mars

    def recam(table):
        assert table[0, 3] == 1
        table[0, 3] = 2

    _edit_table(root, 'tracks_train_info.mat', 'track_train_info', recam)
    with pytest.raises(
            ValueError,
            match=r'tracks_train_info\.mat, row 1: the camera column says 2 '
            r'but the frame names .* say camera 1'):
        MARS(data_root=str(root), split='train')


def test_camera_at_or_beyond_num_cams(tiny_mars):
    root, _ = tiny_mars
    # The release has cameras 0 and 1 (0-based).
    with pytest.raises(
            ValueError,
            match=r'MARS \(train\) .* has camera id 1 \(0-based\), but '
            r'num_cams = 1 \(metainfo\)'):
        MARS(data_root=str(root), split='train', metainfo=dict(num_cams=1))
    assert MARS(
        data_root=str(root), split='train',
        metainfo=dict(num_cams=2)).metainfo['num_cams'] == 2


@pytest.mark.parametrize('damage', ['garbage', 'truncated'])
def test_corrupt_mat_file(tiny_mars, damage):
    root, _ = tiny_mars
    path = root / 'info' / 'tracks_train_info.mat'
    data = path.read_bytes()
    path.write_bytes(b'\x00garbage' *
                     40 if damage == 'garbage' else data[:len(data) // 2])
    with pytest.raises(
            ValueError,
            match=r'tracks_train_info\.mat is not a readable MATLAB file'):
        MARS(data_root=str(root), split='train')


def test_mars_name_list_with_bom_or_not_utf8(tiny_mars):
    root, _ = tiny_mars
    path = root / 'info' / 'train_name.txt'
    text = path.read_bytes()
    path.write_bytes(b'\xef\xbb\xbf' + text)
    with pytest.raises(
            ValueError,
            match=r'train_name\.txt starts with a UTF-8 byte-order mark'):
        MARS(data_root=str(root), split='train')
    lines = text.split(b'\n')
    lines[2] = lines[2][:4] + b'\xe9' + lines[2][5:]
    path.write_bytes(b'\n'.join(lines))
    with pytest.raises(
            ValueError,
            match=r'train_name\.txt, line 3: the byte .* not UTF-8'):
        MARS(data_root=str(root), split='train')


def _ilids_with_row(tmp_path, edit):
    root = tmp_path / 'ilids'
    layout = write_ilidsvid_layout(str(root))
    ls_set = layout['ls_set'].copy()
    edit(ls_set[0])
    savemat(
        str(root / 'train-test people splits' /
            'train_test_splits_ilidsvid.mat'), dict(ls_set=ls_set))
    return root, layout


def test_ilidsvid_person_repeated_within_a_split(tmp_path):

    def repeat(row):
        row[1] = row[0]

    root, layout = _ilids_with_row(tmp_path, repeat)
    with pytest.raises(
            ValueError,
            match=r'train_test_splits_ilidsvid\.mat, ls_set row 1: "test" '
            r"names the person 'person\d{3}' twice"):
        iLIDSVID(data_root=str(root), split='query', split_id=0)
    # Another split is fine.
    iLIDSVID(data_root=str(root), split='query', split_id=1)


def test_ilidsvid_person_in_train_and_test(tmp_path):

    def overlap(row):
        row[4] = row[0]

    root, _ = _ilids_with_row(tmp_path, overlap)
    for split in ('train', 'gallery'):
        with pytest.raises(
                ValueError,
                match=r'ls_set row 1: the persons \[.person\d{3}.\] are in '
                r'both "train" and "test"'):
            iLIDSVID(data_root=str(root), split=split, split_id=0)


@pytest.mark.parametrize('mistake', ['repeated', 'both'])
def test_prid2011_inconsistent_split(tmp_path, mistake):
    root = tmp_path / 'prid'
    layout = write_prid2011_layout(str(root))
    splits = layout['splits']
    name = splits[2]['train'][0]
    splits[2]['train' if mistake == 'repeated' else 'test'].append(name)
    (root / 'splits_prid2011.json').write_text(json.dumps(splits))
    message = (f'"train" names the person {name!r} twice' if mistake
               == 'repeated' else f"the persons \\[{name!r}\\] are in both")
    with pytest.raises(
            ValueError, match=r'splits_prid2011\.json, split 2: ' + message):
        PRID2011(data_root=str(root), split='train', split_id=2)


def test_prid2011_splits_file_with_bom(tmp_path):
    root = tmp_path / 'prid'
    write_prid2011_layout(str(root))
    path = root / 'splits_prid2011.json'
    path.write_bytes(b'\xef\xbb\xbf' + path.read_bytes())
    with pytest.raises(
            ValueError,
            match=r'splits_prid2011\.json starts with a UTF-8 '
            'byte-order mark'):
        PRID2011(data_root=str(root), split='train')


def test_lsvid_duplicate_line_and_camera_beyond_num_cams(tmp_path):
    root = tmp_path / 'lsvid'
    write_lsvid_layout(str(root))
    path = root / 'list_sequence' / 'list_seq_train.txt'
    original = path.read_text()
    lines = original.splitlines()
    path.write_text('\n'.join(lines + [lines[1]]) + '\n')
    with pytest.raises(
            ValueError,
            match=r'list_seq_train\.txt, line 7 repeats .*list_seq_train\.txt,'
            r' line 2 \(the same tracklet prefix'):
        LSVID(data_root=str(root), split='train')
    path.write_text(original)
    # The layout's frames name cameras 2 and 5 (1-based).
    with pytest.raises(
            ValueError,
            match=r'list_seq_train\.txt, line 2: the frames name camera 5, '
            r'but num_cams = 4'):
        LSVID(data_root=str(root), split='train', metainfo=dict(num_cams=4))


def test_lsvid_list_not_utf8(tmp_path):
    root = tmp_path / 'lsvid'
    write_lsvid_layout(str(root))
    path = root / 'list_sequence' / 'list_seq_test.txt'
    path.write_bytes(path.read_bytes() + b'tracklet_test/\xff 3\n')
    with pytest.raises(
            ValueError,
            match=r'list_seq_test\.txt, line 8: the byte .* not UTF-8'):
        LSVID(data_root=str(root), split='query')


def _custom_root(tmp_path):
    root = tmp_path / 'data'
    for name in ('a', 'b'):
        folder = root / name
        folder.mkdir(parents=True)
        for i in range(3):
            cv2.imwrite(
                str(folder / f'{i}.jpg'), np.zeros((8, 4, 3), np.uint8))
    return root


def test_custom_duplicate_line_and_camera_beyond_num_cams(tmp_path):
    root = _custom_root(tmp_path)
    ann = root / 'train.txt'
    ann.write_text('a 1 0\nb 2 1\na,  3 0\n'.replace(
        'a,  ', 'a/0.jpg,a/1.jpg,'
        'a/2.jpg '))
    with pytest.raises(
            ValueError,
            match=r'train\.txt, line 3 repeats .*train\.txt, line 1 \(the '
            r'same frames'):
        CustomVideoReIDDataset(data_root=str(root), ann_file='train.txt')
    ann.write_text('a 1 0\nb 2 3\n')
    with pytest.raises(
            ValueError,
            match=r'train\.txt, line 2: camid 3 is beyond the num_cams = 2'):
        CustomVideoReIDDataset(
            data_root=str(root),
            ann_file='train.txt',
            metainfo=dict(num_cams=2))


@pytest.mark.parametrize('content,message', [
    (b'\xef\xbb\xbfa 1 0\n', 'starts with a UTF-8 byte-order mark'),
    (b'\xff\xfea\x001\x00', 'starts with a UTF-16 LE byte-order mark'),
    (b'a 1 0\nb 2 1 \xe4\n',
     r"line 2: the byte b'\\xe4' at offset 12 .* is not UTF-8"),
])
def test_custom_annotation_encoding(tmp_path, content, message):
    root = _custom_root(tmp_path)
    (root / 'train.txt').write_bytes(content)
    with pytest.raises(ValueError, match=r'train\.txt,? ' + message):
        CustomVideoReIDDataset(data_root=str(root), ann_file='train.txt')
