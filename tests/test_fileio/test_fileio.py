# Copyright (c) mmtfclip contributors. All rights reserved.
import os
import pickle

import pytest
import torch

from mmtfclip.fileio import (DIGEST_KEY, UnsafeFileError, content_digest,
                             load_file, save_file)


class _Payload:

    def __reduce__(self):
        return (os.system, ('touch planted', ))


def test_save_load_roundtrip_with_digest(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    obj = dict(state_dict={'w': torch.arange(6.).view(2, 3)}, meta=dict(e=1))
    save_file(obj, path)
    loaded = load_file(path)
    assert DIGEST_KEY in loaded and DIGEST_KEY not in obj
    assert torch.equal(loaded['state_dict']['w'], obj['state_dict']['w'])
    assert content_digest(loaded) == loaded[DIGEST_KEY]
    assert not [p for p in os.listdir(tmp_path) if p.endswith('.tmp')]


def test_flipped_value_is_refused(tmp_path):
    path = str(tmp_path / 'ckpt.pth')
    save_file(dict(w=torch.ones(4)), path)
    obj = torch.load(path, weights_only=True)
    obj['w'][2] = 1.0000001
    torch.save(obj, path)
    with pytest.raises(UnsafeFileError, match='digest'):
        load_file(path, what='checkpoint')


def test_empty_truncated_and_planted_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    empty = tmp_path / 'empty.pth'
    empty.write_bytes(b'')
    with pytest.raises(UnsafeFileError, match='empty'):
        load_file(str(empty))
    good = tmp_path / 'good.pth'
    save_file(dict(w=torch.ones(100)), str(good))
    cut = tmp_path / 'cut.pth'
    cut.write_bytes(good.read_bytes()[:200])
    with pytest.raises(UnsafeFileError, match='cut.pth'):
        load_file(str(cut))
    planted = tmp_path / 'planted.pth'
    with open(planted, 'wb') as f:
        pickle.dump({'w': _Payload()}, f)
    with pytest.raises(UnsafeFileError, match='planted.pth'):
        load_file(str(planted))
    assert not (tmp_path / 'planted').exists()
    with pytest.raises(FileNotFoundError, match='missing.pth'):
        load_file(str(tmp_path / 'missing.pth'))
