# Copyright (c) mmtfclip contributors. All rights reserved.
"""CLIPMemoryHook on a generated MARS-layout dataset."""
import os
import os.path as osp
import signal
import socket
import subprocess
import sys
import time
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub, MMLogger
from torch.utils.data import DataLoader, Subset

from mmtfclip.engine.hooks import CLIPMemoryHook
from mmtfclip.fileio import DIGEST_KEY, load_file
from mmtfclip.registry import HOOKS, MODELS
from mmtfclip.testing import tiny_clip_arch
from mmtfclip.utils import make_synthetic_mars

T, H, W, IDS = 3, 64, 32, 4
PIPELINE = [
    dict(
        type='SampleTrackletFrames', clip_len=T, mode='dense', test_mode=True),
    dict(type='LoadTrackletFrames'),
    dict(type='TrackletResize', scale=(W, H)),  # (w, h)
    dict(type='PackTrackletInputs'),
]


def build_model(seed=0):
    torch.manual_seed(seed)
    return MODELS.build(
        dict(
            type='TFCLIP',
            backbone=dict(
                type='CLIPViT',
                arch=tiny_clip_arch(),
                img_size=(H, W),
                num_cams=2),
            neck=dict(
                type='TemporalMemoryDiffusion',
                embed_dims=64,
                num_heads=2,
                num_frames=T),
            head=dict(
                type='CLIPMemoryHead',
                num_classes=IDS,
                in_channels=64,
                proj_channels=32,
                ssp=dict(type='SequenceSpecificPrompt', num_heads=2))))


def dataset_cfg(root, cache_dir):
    return dict(
        type='MARS',
        data_root=root,
        split='train',
        cache_dir=cache_dir,
        pipeline=[dict(type='SampleTrackletFrames', clip_len=T)])


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    root = str(tmp_path_factory.mktemp('mars'))
    # 4 training identities x 2 cameras, 5-9 frames: 2-3 dense clips each.
    make_synthetic_mars(
        root,
        num_ids=8,
        num_cams=2,
        tracklets_per_id=1,
        min_frames=5,
        max_frames=9,
        img_size=(H, W))
    return dataset_cfg(root, str(tmp_path_factory.mktemp('index_cache')))


class ScalarRecorder:
    """What the hook sends to the visualisation backends."""

    def __init__(self):
        self.scalars = {}

    def add_scalars(self, scalars, step=0):
        self.scalars.update(scalars)


def fake_runner(model, dataset, work_dir, iteration=0):
    return SimpleNamespace(
        visualizer=ScalarRecorder(),
        model=model,
        work_dir=str(work_dir),
        iter=iteration,
        cfg=Config(dict(train_dataloader=dict(dataset=dataset))),
        logger=MMLogger.get_instance('clip_memory_test'),
        message_hub=MessageHub.get_instance('clip_memory_test'))


def reference_memory(model, hook, runner):
    """Per tracklet: mean over dense clips of the projected class token
    averaged over frames; per identity: mean over tracklets."""
    dataset = hook.build_dataset(runner)
    per_id = {}
    model.eval()
    for i in range(len(dataset)):
        item = dataset[i]
        assert item['inputs'].dim() == 5  # dense clips [N, T, 3, H, W]
        x = model.data_preprocessor(dict(inputs=[item['inputs']]))['inputs']
        with torch.no_grad():
            _, proj = model.backbone(x.flatten(0, 2))
        feat = proj[:, 0].view(-1, T, 32).mean(1).mean(0)
        per_id.setdefault(int(item['data_samples'].gt_label), []).append(feat)
    return torch.stack(
        [torch.stack(per_id[k]).mean(0) for k in sorted(per_id)])


def test_memory_is_the_per_identity_mean(data, tmp_path):
    model = build_model()
    hook = HOOKS.build(
        dict(
            type='CLIPMemoryHook',
            pipeline=PIPELINE,
            clips_per_batch=5,
            tracklets_per_load=3,
            num_workers=0))
    runner = fake_runner(model, data, tmp_path)
    model.train()
    hook.before_train(runner)
    assert model.training  # mode restored
    expected = reference_memory(model, hook, runner)
    assert expected.shape == (IDS, 32)
    torch.testing.assert_close(model.head.clip_memory, expected)
    assert osp.isfile(tmp_path / 'clip_memory.pth')
    assert runner.visualizer.scalars[
        'train/clip_memory_build_time_s'] == runner.message_hub.get_info(
            'clip_memory_build_time') > 0


def test_cache_resume_and_errors(data, tmp_path, monkeypatch):
    model = build_model()
    hook = CLIPMemoryHook(PIPELINE, num_workers=0)
    hook.before_train(fake_runner(model, data, tmp_path))
    built = model.head.clip_memory.clone()

    def must_not_build(*args, **kwargs):
        raise AssertionError('rebuilt')

    # Same data, pipeline and weights: the cache is reused.
    fresh = build_model()
    monkeypatch.setattr(fresh, 'prepare_memory', must_not_build)
    hook.before_train(fake_runner(fresh, data, tmp_path))
    assert torch.equal(fresh.head.clip_memory, built)
    # A new run whose model came with a memory (load_from) keeps it.
    hook.before_train(fake_runner(fresh, data, tmp_path / 'other'))
    assert torch.equal(fresh.head.clip_memory, built)
    # Other encoder weights: rebuilt.
    with torch.no_grad():
        fresh.backbone.proj.add_(1)
    hook.force_rebuild = True
    with pytest.raises(AssertionError, match='rebuilt'):
        hook.before_train(fake_runner(fresh, data, tmp_path))
    hook.force_rebuild = False
    # Resumed: the checkpoint's memory stays, even with updated weights.
    resumed = build_model(seed=1)
    monkeypatch.setattr(resumed, 'prepare_memory', must_not_build)
    resumed.head.set_memory(built * 2)
    hook.before_train(fake_runner(resumed, data, tmp_path, iteration=10))
    assert torch.equal(resumed.head.clip_memory, built * 2)
    # Resumed without a memory: the cached one, never a rebuild.
    resumed.head.set_memory(torch.zeros(IDS, 32))
    hook.before_train(fake_runner(resumed, data, tmp_path, iteration=10))
    assert torch.equal(resumed.head.clip_memory, built)
    resumed.head.set_memory(torch.zeros(IDS, 32))
    with pytest.raises(RuntimeError, match='cannot be rebuilt'):
        hook.before_train(
            fake_runner(resumed, data, tmp_path / 'empty', iteration=10))


def test_identity_checks(data, tmp_path):
    hook = CLIPMemoryHook(PIPELINE, num_workers=0, cache_file=None)
    model = build_model()
    model.head.num_classes = 5
    with pytest.raises(
            ValueError, match='4 identities but '
            'model.head.num_classes=5'):
        hook.before_train(fake_runner(model, data, tmp_path))
    # A loader without identity 1's tracklets.
    model = build_model()
    dataset = hook.build_dataset(fake_runner(model, data, tmp_path))
    subset = Subset(dataset, [
        i for i in range(len(dataset)) if dataset.get_data_info(i)['pid'] != 1
    ])
    with pytest.raises(ValueError, match=r'1 of the 4 identities .*\[1\]'):
        model.prepare_memory(
            DataLoader(subset, batch_size=2, collate_fn=pseudo_collate))
    # A sampler that repeats tracklets would weigh them twice.
    with pytest.raises(ValueError, match='repeats or drops'):
        model.prepare_memory(
            DataLoader(
                dataset,
                batch_size=2,
                sampler=list(range(len(dataset))) + [0],
                collate_fn=pseudo_collate))


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _rank_worker(rank, world_size, port, dataset, work_dir):
    os.environ.update(MASTER_ADDR='127.0.0.1', MASTER_PORT=str(port))
    dist.init_process_group('gloo', rank=rank, world_size=world_size)
    try:
        from mmtfclip.utils import register_all_modules
        register_all_modules()
        torch.set_num_threads(1)
        hook = CLIPMemoryHook(PIPELINE, num_workers=0, clips_per_batch=4)
        # Built over both ranks; rank 0 writes the cache ...
        built = build_model()
        hook.before_train(fake_runner(built, dataset, work_dir))
        dist.barrier()
        # ... which rank 0 reads and broadcasts in the next run.
        cached = build_model()
        hook.before_train(fake_runner(cached, dataset, work_dir))
        torch.save([built.head.clip_memory, cached.head.clip_memory],
                   osp.join(work_dir, f'memory_rank{rank}.pth'))
    finally:
        dist.destroy_process_group()


def test_two_ranks_give_the_same_memory(data, tmp_path):
    mp.spawn(
        _rank_worker,
        args=(2, _free_port(), data, str(tmp_path)),
        nprocs=2,
        join=True)
    model = build_model()
    hook = CLIPMemoryHook(PIPELINE, num_workers=0, cache_file=None)
    single = model.prepare_memory(
        hook.build_dataloader(
            hook.build_dataset(fake_runner(model, data, tmp_path))))
    for rank in (0, 1):
        built, cached = torch.load(
            str(tmp_path / f'memory_rank{rank}.pth'), weights_only=True)
        torch.testing.assert_close(built, single, rtol=1e-5, atol=1e-6)
        assert torch.equal(cached, built)


class LogRecorder:
    """The runner's logger, keeping what the hook says."""

    def __init__(self):
        self.lines = []

    def info(self, msg):
        self.lines.append(msg)

    warning = info


def counting_builds(model, monkeypatch):
    calls = []
    build = model.prepare_memory

    def counting(*args, **kwargs):
        calls.append(1)
        return build(*args, **kwargs)

    monkeypatch.setattr(model, 'prepare_memory', counting)
    return calls


def test_cache_is_validated_and_rebuilt(data, tmp_path, monkeypatch):
    hook = CLIPMemoryHook(PIPELINE, num_workers=0)
    path = tmp_path / 'clip_memory.pth'

    def run(model=None, iteration=0):
        model = model or build_model()
        calls = counting_builds(model, monkeypatch)
        runner = fake_runner(model, data, tmp_path, iteration)
        runner.logger = LogRecorder()
        hook.before_train(runner)
        return model, len(calls), ' '.join(runner.logger.lines)

    built, builds, _ = run()
    assert builds == 1
    saved = load_file(str(path))
    assert DIGEST_KEY in saved and torch.equal(saved['memory'],
                                               built.head.clip_memory)
    assert run()[1] == 0
    # Truncated (a killed write of an older version): reported, rebuilt.
    path.write_bytes(path.read_bytes()[:200])
    model, builds, log = run()
    assert builds == 1 and 'truncated or corrupt' in log
    assert torch.equal(model.head.clip_memory, built.head.clip_memory)
    # Edited after saving: the digest no longer matches.
    edited = torch.load(str(path), weights_only=True)
    edited['memory'][0, 0] += 1
    torch.save(edited, str(path))
    model, builds, log = run()
    assert builds == 1 and 'content digest' in log
    # Stale: other preprocessing, other frame files.
    model = build_model()
    model.data_preprocessor.mean += 1
    _, builds, log = run(model)
    assert builds == 1 and 'made for other preprocessor' in log
    assert run()[1] == 1  # back to the config's mean
    frame = hook.build_dataset(fake_runner(
        model, data, tmp_path)).get_data_info(0)['frame_paths'][0]
    stat = os.stat(frame)
    os.utime(frame, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    _, builds, log = run()
    assert builds == 1 and 'made for other frames' in log
    # A resumed run cannot rebuild: a damaged cache is an error naming it.
    path.write_bytes(path.read_bytes()[:200])
    resumed = build_model()
    resumed.head.set_memory(torch.zeros(IDS, 32))
    with pytest.raises(RuntimeError, match=r'cannot be rebuilt') as err:
        run(resumed, iteration=5)
    assert 'clip_memory.pth is truncated' in str(err.value)


SLOW_LOADER = '''
import os, sys, time
import torch
from mmtfclip.engine.hooks import CLIPMemoryHook
from mmtfclip.fileio import DIGEST_KEY, load_file

class Slow(torch.utils.data.Dataset):
    def __len__(self):
        return 4

    def __getitem__(self, i):
        open(os.path.join(sys.argv[1], str(os.getpid())), 'w').close()
        time.sleep(120)  # busy: torch's own parent check never runs

loader = CLIPMemoryHook([], num_workers=2, tracklets_per_load=1)
next(iter(loader.build_dataloader(Slow())))
'''


def _alive(pid):
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().split(')')[-1].split()[0] != 'Z'
    except FileNotFoundError:
        return False


@pytest.mark.skipif(
    not sys.platform.startswith('linux'), reason='PR_SET_PDEATHSIG')
def test_loader_workers_end_with_their_parent(tmp_path):
    script = tmp_path / 'slow_loader.py'
    script.write_text(SLOW_LOADER)
    marks = tmp_path / 'workers'
    marks.mkdir()
    parent = subprocess.Popen([sys.executable, str(script), str(marks)])
    try:
        deadline = time.monotonic() + 120
        while len(os.listdir(marks)) < 2 and time.monotonic() < deadline:
            assert parent.poll() is None, 'the loader script failed'
            time.sleep(0.2)
        workers = [int(name) for name in os.listdir(marks)]
        assert len(workers) == 2 and all(_alive(pid) for pid in workers)
    finally:
        parent.kill()
        parent.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:
        os.kill(pid, signal.SIGKILL)
    assert not survivors
