# Copyright (c) mmtfclip contributors. All rights reserved.
"""The configs of docs/custom_dataset.md, as printed there, train and test
on a generated layout of one's own tracklets: the MARS-recipe one with a
tiny CLIP instead of ViT-B/16, the CPU-sized one as it is (one epoch)."""
import os
import os.path as osp
import re

import cv2
import numpy as np
import pytest

from helpers.tiny_demo import run_python

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
DOC = osp.join(ROOT, 'docs', 'custom_dataset.md')


def _doc_configs() -> dict:
    with open(DOC) as f:
        blocks = re.findall(r'```python\n(.*?)```', f.read(), flags=re.S)
    configs = {}
    for block in blocks:
        base = re.search(r"_base_ = \['\./(\w+)\.py'\]", block).group(1)
        configs[base] = block
    message = ('docs/custom_dataset.md should show a config based on '
               'tfclip_mars.py and a CPU-sized one based on tfclip_demo.py')
    assert sorted(configs) == ['tfclip_demo', 'tfclip_mars'], message
    return configs


# The MARS recipe's ViT-B/16 replaced by a tiny randomly initialised CLIP.
TINY_CLIP = """
model = dict(
    backbone=dict(
        arch=dict(_delete_=True, width=64, layers=2, heads=2, patch_size=32,
                  output_dim=32),
        pretrained=None),
    neck=dict(embed_dims=64, num_heads=2),
    head=dict(in_channels=64, proj_channels=32, ssp=dict(num_heads=2)))
"""


def _write_layout(root, num_train=8, num_test=4, num_cams=2):
    rng = np.random.default_rng(0)
    lines = dict(train=[], query=[], gallery=[])
    for pid in range(num_train + num_test):
        colour = rng.integers(0, 255, 3)
        for cam in range(num_cams):
            for k in range(2 if pid < num_train else 1):
                rel = f'cam{cam}/p{pid:03d}_{k}'
                folder = osp.join(root, rel)
                os.makedirs(folder, exist_ok=True)
                for t in range(5):
                    img = np.clip(colour + rng.normal(0, 20, (32, 16, 3)), 0,
                                  255).astype(np.uint8)
                    cv2.imwrite(osp.join(folder, f'{t:06d}.jpg'), img)
                if pid < num_train:
                    lines['train'].append(f'{rel} {pid} {cam}')
                else:
                    split = 'query' if cam == 0 else 'gallery'
                    lines[split].append(f'{rel} {pid} {cam}')
    for split, rows in lines.items():
        with open(osp.join(root, f'{split}.txt'), 'w') as f:
            f.write('\n'.join(rows) + '\n')


@pytest.mark.parametrize('base', ['tfclip_mars', 'tfclip_demo'])
def test_custom_dataset_doc_config_trains_and_tests(tmp_path, base):
    data_root = str(tmp_path / 'walkers')
    _write_layout(data_root)
    text = _doc_configs()[base]
    # The user's values for this layout; the rest is the doc's text.
    text = text.replace(f"'./{base}.py'",
                        repr(osp.join(ROOT, 'configs', f'{base}.py')))
    text = re.sub(r"data_root = '.*'", f'data_root = {data_root!r}', text)
    text = re.sub(r'num_train_ids = \d+', 'num_train_ids = 8', text)
    text = re.sub(r'num_cams = \d+', 'num_cams = 2', text)
    (tmp_path / 'tfclip_walkers.py').write_text(text)
    # One epoch, no worker processes.
    tiny = TINY_CLIP if base == 'tfclip_mars' else ''
    (tmp_path / 'tiny.py').write_text("_base_ = ['./tfclip_walkers.py']\n" +
                                      tiny + """
train_cfg = dict(max_epochs=1, val_interval=1)
default_hooks = dict(checkpoint=dict(interval=1))
train_dataloader = dict(num_workers=0, persistent_workers=False)
val_dataloader = dict(num_workers=0, persistent_workers=False)
test_dataloader = dict(num_workers=0, persistent_workers=False)
env_cfg = dict(dist_cfg=dict(backend='gloo'))
""")
    work_dir = str(tmp_path / 'work')
    cfg = str(tmp_path / 'tiny.py')
    run_python(
        [osp.join(ROOT, 'tools', 'train.py'), cfg, '--work-dir', work_dir],
        cwd=ROOT,
        timeout=600)
    checkpoint = osp.join(work_dir, 'epoch_1.pth')
    assert osp.isfile(checkpoint)
    log = run_python([
        osp.join(ROOT, 'tools', 'test.py'), cfg, checkpoint, '--work-dir',
        work_dir
    ],
                     cwd=ROOT,
                     timeout=600)
    assert 'reid/mAP' in log
    # The doc's protocol for separate query and gallery files.
    assert 'gallery tracklets only (query_in_gallery=False' in log
    assert '4 queries vs 4 gallery entries' in log
