# Copyright (c) mmtfclip contributors. All rights reserved.
"""Market1501 and MSMT17 against torchreid's reading of the same files."""
import glob
import os.path as osp
import re

import pytest

from helpers.image_reid import make_market1501_layout, make_msmt17_layout
from mmtfclip.datasets import MSMT17, Market1501
from mmtfclip.registry import DATASETS


def torchreid_market1501(root, folder, relabel):
    """torchreid's Market1501.process_dir (restated, not imported)."""
    paths = glob.glob(osp.join(root, folder, '*.jpg'))
    pattern = re.compile(r'([-\d]+)_c(\d)')
    pids = set()
    for path in paths:
        pid, _ = map(int, pattern.search(path).groups())
        if pid != -1:
            pids.add(pid)
    label = {pid: i for i, pid in enumerate(sorted(pids))}
    data = []
    for path in sorted(paths):
        pid, cam = map(int, pattern.search(path).groups())
        if pid == -1:
            continue
        data.append((path, label[pid] if relabel else pid, cam - 1))
    return data


def torchreid_msmt17(root, folder, lists):
    """torchreid's MSMT17.process_dir over the given lists, concatenated."""
    data = []
    for name in lists:
        with open(osp.join(root, name)) as f:
            for line in f:
                path, pid = line.split(' ')
                cam = int(path.split('_')[2])
                data.append((osp.join(root, folder, path), int(pid), cam - 1))
    return data


def as_tuples(dataset):
    items = [dataset.get_data_info(i) for i in range(len(dataset))]
    for item in items:
        assert len(item['frame_paths']) == 1
    return [(d['frame_paths'][0], d['pid'], d['camid']) for d in items]


def test_market1501_equals_torchreid(tmp_path):
    root = str(tmp_path / 'Market-1501-v15.09.15')
    written = make_market1501_layout(root)
    for split, folder in (('train', 'bounding_box_train'), ('query', 'query'),
                          ('gallery', 'bounding_box_test')):
        ours = DATASETS.build(
            dict(type='Market1501', data_root=root, split=split))
        expected = torchreid_market1501(root, folder, split == 'train')
        assert as_tuples(ours) == expected
        assert ours.metainfo['num_cams'] == 6
        assert ours.metainfo['num_pids'] == len({e[1] for e in expected})
        # Junk gone everywhere; the distractors stay in the gallery.
        assert len(ours) == sum(not n.startswith('-1')
                                for n in written[folder])
    gallery = Market1501(data_root=root, split='gallery')
    assert 0 in {gallery.get_data_info(i)['pid'] for i in range(len(gallery))}
    train = Market1501(data_root=root, split='train')
    assert train.metainfo['num_pids'] == 3
    assert sorted({d[1] for d in as_tuples(train)}) == [0, 1, 2]


def test_market1501_cache_follows_the_listing(tmp_path):
    root = tmp_path / 'market'
    make_market1501_layout(str(root))
    first = Market1501(data_root=str(root), split='query', use_cache=True)
    (root / 'query' / '0003_c6s1_000001_01.jpg').write_bytes(
        (root / 'query' / next(
            p.name for p in (root / 'query').iterdir()
            if p.name.startswith('0003'))).read_bytes())
    second = Market1501(data_root=str(root), split='query', use_cache=True)
    assert len(second) == len(first) + 1


def test_market1501_rejects_bad_names(tmp_path):
    root = tmp_path / 'market'
    make_market1501_layout(str(root))
    (root / 'query' / 'person3.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='person3.jpg'):
        Market1501(data_root=str(root), split='query')
    (root / 'query' / 'person3.jpg').unlink()
    (root / 'query' / '0003_c7s1_000001_01.jpg').write_bytes(b'')
    with pytest.raises(ValueError, match='camera 7'):
        Market1501(data_root=str(root), split='query')
    with pytest.raises(FileNotFoundError, match='bounding_box_train'):
        Market1501(data_root=str(tmp_path), split='train')


@pytest.mark.parametrize('version', ['MSMT17_V1', 'MSMT17_V2'])
def test_msmt17_equals_torchreid_with_val(tmp_path, version):
    root = str(tmp_path / version)
    lists = make_msmt17_layout(root, version=version)
    train_dir, test_dir = dict(
        MSMT17_V1=('train', 'test'),
        MSMT17_V2=('mask_train_v2', 'mask_test_v2'))[version]
    cases = dict(
        train=(train_dir, ['list_train.txt', 'list_val.txt']),
        query=(test_dir, ['list_query.txt']),
        gallery=(test_dir, ['list_gallery.txt']))
    for split, (folder, names) in cases.items():
        ours = MSMT17(data_root=root, split=split)
        expected = torchreid_msmt17(root, folder, names)
        assert as_tuples(ours) == expected
        assert len(ours) == sum(len(lists[n]) for n in names)
        assert ours.metainfo['num_cams'] == 15
        assert all(osp.isfile(p) for p, _, _ in expected)
    train_only = MSMT17(data_root=root, split='train', include_val=False)
    assert as_tuples(train_only) == torchreid_msmt17(root, train_dir,
                                                     ['list_train.txt'])


def test_msmt17_errors_name_the_file(tmp_path):
    root = tmp_path / 'MSMT17_V1'
    make_msmt17_layout(str(root))
    with pytest.raises(FileNotFoundError, match='neither image layout'):
        MSMT17(data_root=str(tmp_path), split='query')
    with open(root / 'list_query.txt', 'a') as f:
        f.write('0001/0001_999_16_0303morning_0001_0.jpg 1\n')
    with pytest.raises(ValueError, match=r'list_query.txt, line 5: camera 16'):
        MSMT17(data_root=str(root), split='query', use_cache=False)
    (root / 'list_val.txt').unlink()
    with pytest.raises(FileNotFoundError, match='list_val.txt'):
        MSMT17(data_root=str(root), split='train')
