# Copyright (c) mmtfclip contributors. All rights reserved.
import importlib.util
import os.path as osp

import pytest

from mmtfclip.utils import replace_key

_TOOL = osp.join(osp.dirname(__file__), '..', '..', 'tools', 'train_splits.py')


@pytest.fixture(scope='module')
def tool():
    spec = importlib.util.spec_from_file_location('train_splits', _TOOL)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_replace_key_reaches_nested_datasets():
    cfg = dict(
        train_dataloader=dict(dataset=dict(type='iLIDSVID', split_id=0)),
        test_dataloader=dict(
            dataset=dict(
                type='ConcatDataset',
                datasets=[
                    dict(type='iLIDSVID', split='query', split_id=0),
                    dict(type='iLIDSVID', split='gallery', split_id=0)
                ])),
        model=dict(type='TFCLIP'))
    assert replace_key(cfg, 'split_id', 7) == 3
    assert cfg['train_dataloader']['dataset']['split_id'] == 7
    assert [
        d['split_id'] for d in cfg['test_dataloader']['dataset']['datasets']
    ] == [7, 7]
    assert 'split_id' not in cfg['model']


def test_summarize_mean_and_std(tool):
    summary = tool.summarize({
        0: dict(mAP=80.0, rank1=90.0),
        1: dict(mAP=90.0, rank1=92.0),
    })
    assert summary['mAP'] == dict(mean=85.0, std=5.0, n=2)
    assert summary['rank1']['mean'] == pytest.approx(91.0)
