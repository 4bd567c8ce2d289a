# Copyright (c) mmtfclip contributors. All rights reserved.
"""Speed of a config's training step, test embedding and CLIP-Memory build.

The model is built from the config with ``model.backbone.pretrained=None``:
random weights cost the same time as CLIP's. Inputs are synthetic uint8
clips of the config's ``T x H x W`` already on the device (``--data
synthetic``), or come from the config's own data loaders, JPEG decoding
included (``--data real``). After ``--warmup`` steps, ``--iters`` steps are
timed one by one, with CUDA events on a GPU (and the wall clock around all
of them after ``torch.cuda.synchronize``), with the wall clock on the CPU.

Tasks:

* ``train``: the data preprocessor, forward, the config's losses, backward
  and the optimizer step of an optimizer wrapper built from the config's
  ``optim_wrapper`` (``model.train_step``). The CLIP-Memory is filled with
  random unit vectors, since the head refuses an empty one.
* ``test``: the test embedding of ``[B, T, 3, H, W]`` clips
  (``mode='tensor'``). With ``--data real``, batches of ``--batch``
  tracklets (default: the config's ``test_dataloader.batch_size``) from the
  config's test loader, dense clips included: the data preprocessor
  concatenates their clips, the model encodes them in chunks of
  ``model.max_test_clips`` and averages each tracklet's; sequences/s then
  counts tracklets and FLOPs are counted on the first batch and scaled by
  the frames of the timed steps. With ``--amp`` the cosine between the bf16
  and the fp32 embeddings of the first batch is reported too.
* ``memory``: the CLIP-Memory hook's encoder path
  (``TFCLIP.extract_clip_feat`` on ``B`` clips). With ``--data real`` the
  whole build of the config's ``CLIPMemoryHook`` on its training set, from
  the JPEG files, is timed once instead.

One JSON object is written to stdout, alone (``> result.json`` is JSON; the
logs go to stderr), and to ``--out``: ms per step (mean,
median, p90), sequences/s, frames/s, peak memory, model FLOPs per step and
the model FLOPs utilisation (MFU) against a matrix product timed on the
same device at start. FLOPs are counted on one step with
``torch.utils.flop_counter.FlopCounterMode`` (matrix products, convolutions
and attention, run through the math kernel for the count so that it is seen
on every device; element-wise work is not counted); a training step counts
as 3x its forward pass (model FLOPs: the recomputation of
``--checkpointing`` is not counted).

Fast-path switches: ``--amp`` (bf16 autocast: mmengine's
``AmpOptimWrapper`` on a GPU as ``tools/train.py --amp`` sets it up; on the
CPU, where mmengine refuses it, ``torch.autocast('cpu')`` around the plain
wrapper's step), ``--compile`` (``torch.compile`` of each encoder block),
``--checkpointing`` (``model.backbone.with_cp=True``) and
``--fused-optimizer`` (``fused=True`` for the config's optimizer).

Example::

    python tools/analysis_tools/benchmark.py \\
        configs/tfclip/tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py \\
        --task train --batch 16 --amp --compile --fused-optimizer
"""
import argparse
import contextlib
import json
import os
import resource
import statistics
import sys
import time
from contextlib import nullcontext
from functools import partial
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
from mmengine.config import Config, DictAction
from mmengine.logging import print_log
from mmengine.optim import build_optim_wrapper
from mmengine.registry import init_default_scope
from mmengine.runner import Runner
from mmpretrain.structures import DataSample
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.data import DataLoader
from torch.utils.flop_counter import FlopCounterMode

from mmtfclip.registry import DATASETS, HOOKS, MODELS
from mmtfclip.utils.launch import enable_amp

TASKS = ('train', 'test', 'memory')
DEFAULT_BATCH = 16
# Identities per batch come in groups of K tracklets, as the identity
# sampler gives them, so the triplet losses find positives.
TRACKLETS_PER_ID = 4


def parse_args(argv: Optional[List[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description='Time the training step, the test embedding or the '
        'CLIP-Memory build of a config')
    parser.add_argument('config', help='the config file')
    parser.add_argument('--task', choices=TASKS, required=True)
    parser.add_argument(
        '--batch',
        type=int,
        help='sequences (clips) per step; tracklets per step for --task '
        "test --data real (default: 16; there, the config's "
        'test_dataloader.batch_size)')
    parser.add_argument(
        '--iters', type=int, default=20, help='timed steps (default: 20)')
    parser.add_argument(
        '--warmup',
        type=int,
        default=5,
        help='untimed steps first (default: 5)')
    parser.add_argument('--amp', action='store_true', help='bf16 autocast')
    parser.add_argument(
        '--compile',
        action='store_true',
        help='torch.compile each encoder block')
    parser.add_argument(
        '--checkpointing',
        action='store_true',
        help='activation checkpointing of the encoder blocks')
    parser.add_argument(
        '--fused-optimizer',
        action='store_true',
        help="the optimizer's fused implementation (fused=True)")
    parser.add_argument(
        '--data',
        choices=('synthetic', 'real'),
        default='synthetic',
        help="synthetic clips on the device, or the config's data loaders "
        '(default: synthetic)')
    parser.add_argument(
        '--device',
        default='cuda' if torch.cuda.is_available() else 'cpu',
        help='cuda or cpu (default: cuda when available)')
    parser.add_argument('--out', help='also write the JSON to this file')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override settings of the config')
    args = parser.parse_args(argv)
    if (args.batch is not None
            and args.batch < 1) or args.iters < 1 or args.warmup < 0:
        parser.error('--batch and --iters must be >= 1, --warmup >= 0.')
    return args


def load_config(args: argparse.Namespace) -> Config:
    """The config with the benchmark's settings applied."""
    cfg = Config.fromfile(args.config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    init_default_scope(cfg.get('default_scope', 'mmtfclip'))
    backbone = cfg.model.backbone
    backbone.pretrained = None
    init_cfg = backbone.get('init_cfg')
    if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
        backbone.init_cfg = None
    if args.checkpointing:
        backbone.with_cp = True
    if args.fused_optimizer:
        cfg.optim_wrapper.optimizer.fused = True
    if args.amp and args.task == 'train' and args.device.startswith('cuda'):
        enable_amp(cfg)
    elif cfg.get('optim_wrapper', {}).get('type') == 'AmpOptimWrapper':
        # The recipe's fp16 AmpOptimWrapper would run on a GPU under the
        # float32 label of a run without --amp: time fp32, as labelled.
        cfg.optim_wrapper.type = 'OptimWrapper'
        cfg.optim_wrapper.pop('dtype', None)
        cfg.optim_wrapper.pop('loss_scale', None)
    return cfg


def clip_shape(cfg: Config, model: torch.nn.Module) -> Tuple[int, int, int]:
    """``(T, H, W)`` of the model's clips."""
    frames = getattr(model, 'num_frames', None)
    size = cfg.model.backbone.get('img_size')
    if frames is None or size is None:
        raise KeyError(
            f'{cfg.filename}: the clip shape comes from model.neck.num_frames'
            ' (T) and model.backbone.img_size ((h, w)); this config lacks '
            f'{"the first" if frames is None else "the second"}.')
    height, width = (size, size) if isinstance(size, int) else size
    return int(frames), int(height), int(width)


def synthetic_batch(batch: int, shape: Tuple[int, int, int], num_ids: int,
                    num_cams: int, device: torch.device) -> Dict:
    """Random uint8 clips on the device with identities and cameras."""
    frames, height, width = shape
    gen = torch.Generator().manual_seed(0)
    inputs = [
        torch.randint(
            0,
            256, (frames, 3, height, width),
            dtype=torch.uint8,
            generator=gen).to(device) for _ in range(batch)
    ]
    samples = []
    for i in range(batch):
        sample = DataSample().set_gt_label(
            (i // TRACKLETS_PER_ID) % max(num_ids, 1))
        sample.set_field(
            torch.tensor(i % max(num_cams, 1), dtype=torch.int64),
            'camid',
            field_type='data')
        samples.append(sample)
    return dict(inputs=inputs, data_samples=samples)


def fill_memory(model: torch.nn.Module) -> None:
    """Random unit vectors in the CLIP-Memory (the head refuses zeros)."""
    head = model.head
    if getattr(head, 'with_memory', False):
        memory = F.normalize(torch.randn(head.clip_memory.shape), dim=1)
        head.set_memory(memory.to(head.clip_memory))


def compile_blocks(model: torch.nn.Module) -> int:
    """``torch.compile`` each encoder block in place (keys unchanged).

    Returns:
        int: The number of blocks compiled.
    """
    blocks = getattr(
        getattr(model.backbone, 'transformer', None), 'resblocks', None)
    if blocks is None:
        blocks = getattr(model.backbone, 'layers', None)
    if blocks is None:
        raise TypeError(
            f'--compile: {type(model.backbone).__name__} has no encoder '
            'blocks (transformer.resblocks or layers) to compile.')
    for block in blocks:
        block.compile()
    return len(blocks)


def autocast_context(args: argparse.Namespace, device: torch.device):
    """bf16 autocast with ``--amp``, else nothing."""
    if not args.amp:
        return nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def matmul_peak(device: torch.device, dtype: torch.dtype) -> Dict:
    """TFLOP/s of a large square matrix product on the device."""
    size = 8192 if device.type == 'cuda' else 512
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    repeats = 10
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync(device)
    seconds = (time.perf_counter() - start) / repeats
    return dict(
        dtype=str(dtype).replace('torch.', ''),
        size=size,
        tflops=2 * size**3 / seconds / 1e12)


def sync(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def count_flops(step: Callable[[], object]) -> int:
    """FLOPs of one call of ``step``, attention through the math kernel."""
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as fc:
        with torch.no_grad():
            step()
    return int(fc.get_total_flops())


def time_steps(step: Callable[[], Tuple[int, int]], warmup: int, iters: int,
               device: torch.device) -> Tuple[List[float], float, int, int]:
    """Run ``step`` (returning the sequences and the frames it processed)
    warm-up + timed.

    Returns:
        tuple: Milliseconds of each timed step, the wall-clock seconds of
        all of them, and the sequences and the frames the timed steps
        processed.
    """
    for _ in range(warmup):
        step()
    sync(device)
    sequences = frames = 0
    if device.type == 'cuda':
        events = [(torch.cuda.Event(enable_timing=True),
                   torch.cuda.Event(enable_timing=True)) for _ in range(iters)]
        start = time.perf_counter()
        for begin, end in events:
            begin.record()
            done = step()
            end.record()
            sequences += done[0]
            frames += done[1]
        sync(device)
        wall = time.perf_counter() - start
        return ([b.elapsed_time(e)
                 for b, e in events], wall, sequences, frames)
    times = []
    start = time.perf_counter()
    for _ in range(iters):
        tic = time.perf_counter()
        done = step()
        times.append((time.perf_counter() - tic) * 1e3)
        sequences += done[0]
        frames += done[1]
    return times, time.perf_counter() - start, sequences, frames


def frames_in(inputs) -> int:
    """Frames in a batch of uint8 clips (list or stacked)."""
    if isinstance(inputs, torch.Tensor):
        return inputs.shape[:-3].numel()
    return sum(frames_in(x) for x in inputs)


def build_loader(cfg: Config, key: str, batch: int) -> DataLoader:
    """A config's data loader with ``batch`` samples per batch."""
    loader_cfg = cfg[key].copy()
    loader_cfg['batch_size'] = batch
    sampler = loader_cfg.get('sampler') or {}
    if 'batch_size' in sampler:
        loader_cfg['sampler'] = dict(sampler, batch_size=batch)
    return Runner.build_dataloader(loader_cfg, seed=0)


def loader_steps(loader: DataLoader,
                 run: Callable[[Dict], None]) -> Callable[[], Tuple[int, int]]:
    """A step that takes the next batch of a data loader."""
    state = dict(it=iter(loader))

    def step() -> Tuple[int, int]:
        try:
            data = next(state['it'])
        except StopIteration:
            state['it'] = iter(loader)
            data = next(state['it'])
        run(data)
        # The last batch of a test set may be smaller.
        return len(data['inputs']), frames_in(data['inputs'])

    return step


def cosine_to_fp32(model: torch.nn.Module, data: Dict,
                   device: torch.device) -> float:
    """The smallest cosine between bf16-autocast and fp32 embeddings."""
    with torch.no_grad():
        # The preprocessor's samples: with dense clips of different counts
        # they carry each tracklet's num_clips.
        batch = model.data_preprocessor(data, False)
        fp32 = model(**batch, mode='tensor')
        with torch.autocast(device.type, dtype=torch.bfloat16):
            bf16 = model(**batch, mode='tensor')
    return float(F.cosine_similarity(fp32, bf16.float(), dim=1).min())


def build_memory_once(cfg: Config, model: torch.nn.Module) -> Dict:
    """Time the config's CLIPMemoryHook building the memory from disk."""
    hook_cfgs = [
        h for h in cfg.get('custom_hooks', [])
        if h.get('type') == 'CLIPMemoryHook'
    ]
    if not hook_cfgs:
        raise KeyError(f'{cfg.filename}: --task memory --data real needs a '
                       'CLIPMemoryHook in custom_hooks.')
    hook = HOOKS.build(dict(hook_cfgs[0], cache_file=None))
    dataset_cfg = (hook.dataset_cfg or cfg.train_dataloader.dataset).copy()
    dataset_cfg['pipeline'] = hook.pipeline
    dataset = DATASETS.build(dataset_cfg)
    frames = sum(len(info['frame_paths']) for info in dataset.load_data_list())
    sync(model.data_preprocessor.device)
    start = time.perf_counter()
    model.prepare_memory(
        hook.build_dataloader(dataset),
        autocast=hook.autocast,
        max_clips=hook.clips_per_batch)
    sync(model.data_preprocessor.device)
    seconds = time.perf_counter() - start
    return dict(
        tracklets=len(dataset),
        frames_on_disk=frames,
        seconds=seconds,
        frames_per_s=frames / seconds,
        autocast='float16 on CUDA (the hook\'s setting)'
        if hook.autocast else 'none')


def task_steps(args: argparse.Namespace,
               cfg: Config,
               model: torch.nn.Module,
               data: Dict,
               device: torch.device,
               result: Dict,
               loader: Optional[DataLoader] = None) -> Tuple:
    """The timed step of the task, and the forward pass to count FLOPs of.

    ``loader`` is the config's data loader of the task when it is already
    built (``data`` is then its first batch); with ``--data real`` it is
    built here otherwise.

    Returns:
        tuple: A function making the step (a callable returning the
        sequences and the frames
        it processed), the FLOP-counting function and the factor from its
        FLOPs to a step's.
    """
    autocast = partial(autocast_context, args, device)

    if args.task == 'train':
        if args.amp and device.type == 'cpu':
            result['amp_note'] = ('mmengine refuses AmpOptimWrapper without '
                                  'CUDA: torch.autocast(cpu, bf16) around '
                                  'the OptimWrapper step instead')
        optim_wrapper = build_optim_wrapper(model, cfg.optim_wrapper)
        result['optim_wrapper'] = type(optim_wrapper).__name__
        model.train()
        # AmpOptimWrapper autocasts inside train_step on a GPU.
        outer = autocast if device.type == 'cpu' else nullcontext

        def run_batch(batch: Dict) -> None:
            with outer():
                model.train_step(batch, optim_wrapper)

        def forward() -> None:
            with torch.no_grad(), autocast():
                model(**model.data_preprocessor(data, True), mode='loss')

        loader_key, factor = 'train_dataloader', 3
    elif args.task == 'test':
        model.eval()
        if args.amp:
            result['cosine_to_fp32_min'] = cosine_to_fp32(model, data, device)

        def run_batch(batch: Dict) -> None:
            with torch.no_grad(), autocast():
                model(**model.data_preprocessor(batch, False), mode='tensor')

        forward = partial(run_batch, data)
        loader_key, factor = 'test_dataloader', 1
    else:
        model.eval()

        def run_batch(batch: Dict) -> None:
            with torch.no_grad(), autocast():
                inputs = model.data_preprocessor(batch, False)['inputs']
                model.extract_clip_feat(inputs)

        forward = partial(run_batch, data)
        # The encoder path is timed on synthetic clips; the end-to-end
        # build from disk is timed once on its own.
        loader_key, factor = None, 1
        if args.data == 'real':
            result['end_to_end'] = build_memory_once(cfg, model)

    def make_step() -> Callable[[], Tuple[int, int]]:
        if args.data == 'real' and loader_key is not None:
            return loader_steps(
                loader or build_loader(cfg, loader_key, args.batch), run_batch)
        frames = frames_in(data['inputs'])

        def step() -> Tuple[int, int]:
            run_batch(data)
            return args.batch, frames

        return step

    return make_step, forward, factor


def summarise(times: List[float], wall: float, sequences: int,
              frames: int) -> Dict:
    ordered = sorted(times)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return dict(
        ms_per_step=dict(
            mean=statistics.fmean(times),
            median=statistics.median(times),
            p90=p90),
        wall_s=wall,
        sequences_per_s=sequences / wall,
        frames_per_s=frames / wall)


def peak_memory(device: torch.device) -> Dict:
    if device.type == 'cuda':
        return dict(
            bytes=torch.cuda.max_memory_allocated(device),
            kind='torch.cuda.max_memory_allocated')
    # ru_maxrss is in KiB on Linux.
    return dict(
        bytes=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        kind='process peak RSS (CPU)')


def run(args: argparse.Namespace) -> Dict:
    """Benchmark as the arguments say and return the result dict."""
    device = torch.device(args.device)
    if device.type == 'cuda' and not torch.cuda.is_available():
        raise RuntimeError('--device cuda, but CUDA is not available.')
    cfg = load_config(args)
    real_test = args.task == 'test' and args.data == 'real'
    if args.batch is None:
        args.batch = (
            cfg.test_dataloader.batch_size if real_test else DEFAULT_BATCH)
    peaks = dict(bfloat16=matmul_peak(device, torch.bfloat16))
    if not args.amp:
        peaks['float32'] = matmul_peak(device, torch.float32)

    model = MODELS.build(cfg.model)
    model.init_weights()
    model.to(device)
    fill_memory(model)
    shape = clip_shape(cfg, model)
    num_ids = getattr(model.head, 'num_classes', 1)
    loader = None
    if real_test:
        # Dense clips: the FLOPs and the cosine come from a real batch, the
        # same mix of clip counts as the timed steps.
        loader = build_loader(cfg, 'test_dataloader', args.batch)
        data = next(iter(loader))
    else:
        data = synthetic_batch(args.batch, shape, num_ids,
                               getattr(model, 'num_cams', 0), device)
    result = dict(
        task=args.task,
        config=args.config,
        device=(torch.cuda.get_device_name(device)
                if device.type == 'cuda' else 'cpu'),
        torch=torch.__version__,
        dtype='bfloat16 autocast' if args.amp else 'float32',
        batch=args.batch,
        clip_shape=dict(zip(('T', 'H', 'W'), shape)),
        data=args.data,
        compile=args.compile,
        checkpointing=args.checkpointing,
        fused_optimizer=args.fused_optimizer,
        weights='random (model.backbone.pretrained=None); weights do not '
        'change the speed',
        iters=args.iters,
        warmup=args.warmup)
    make_step, flops_fn, flops_factor = task_steps(args, cfg, model, data,
                                                   device, result, loader)
    # Counted before compiling: the counter does not see into compiled
    # graphs.
    flops = count_flops(flops_fn) * flops_factor
    if args.compile:
        result['compiled_blocks'] = compile_blocks(model)
    if device.type == 'cuda':
        torch.cuda.reset_peak_memory_stats(device)
    times, wall, sequences, frames = time_steps(make_step(), args.warmup,
                                                args.iters, device)
    result.update(summarise(times, wall, sequences, frames))
    result['peak_memory'] = peak_memory(device)
    result['peak_memory']['gib'] = result['peak_memory']['bytes'] / 2**30
    seconds = statistics.fmean(times) / 1e3
    if real_test:
        # Test batches differ in frames: the FLOPs are per frame (the
        # encoder works clip by clip) times the timed steps' mean frames.
        flops = flops * frames / (frames_in(data['inputs']) * args.iters)
    result['flops_per_step'] = flops
    result['flops_method'] = (
        'torch.utils.flop_counter.FlopCounterMode on one forward pass '
        '(matmul, conv, attention via the math kernel; element-wise ops not'
        ' counted)' +
        (', x3 for forward + backward' if flops_factor == 3 else '') +
        (', on the first batch, scaled to the timed steps\' mean frames'
         if real_test else ''))
    result['achieved_tflops'] = flops / seconds / 1e12
    result['matmul_peak'] = peaks
    result['mfu_vs_bf16_peak'] = (
        result['achieved_tflops'] / peaks['bfloat16']['tflops'])
    own = 'bfloat16' if args.amp else 'float32'
    result['mfu_vs_own_dtype_peak'] = (
        result['achieved_tflops'] / peaks[own]['tflops'])
    return result


@contextlib.contextmanager
def stdout_to_stderr():
    """Send everything written to file descriptor 1 to 2 meanwhile.

    At the descriptor, so that mmengine's logger (a handler on
    ``sys.stdout``), warnings, native code and data loader workers all
    write to stderr, and stdout holds the JSON alone.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    try:
        os.dup2(2, 1)
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)


def main(argv: Optional[List[str]] = None) -> Dict:
    args = parse_args(argv)
    with stdout_to_stderr():
        result = run(args)
        text = json.dumps(result, indent=2)
        if args.out:
            with open(args.out, 'w') as f:
                f.write(text + '\n')
            print_log(f'Wrote {args.out}', logger='current')
    print(text, flush=True)
    return result


if __name__ == '__main__':
    main()
