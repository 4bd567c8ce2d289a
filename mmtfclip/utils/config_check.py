# Copyright (c) mmtfclip contributors. All rights reserved.
"""Checks that reject a training config that cannot work, before any work.

Each message names the config key to change. What needs the parsed dataset
(identities, cameras) is checked by :class:`mmtfclip.engine.hooks.
ConfigCheckHook` once the Runner has built it.
"""
from typing import Any, Iterator, List, Tuple

from mmengine.config import Config
from mmengine.registry import FUNCTIONS

from mmtfclip import registry

# Collate functions live in mmengine's FUNCTIONS registry.
_REGISTRIES = [getattr(registry, name)
               for name in registry.__all__] + [FUNCTIONS]


def _walk(node: Any,
          path: str,
          scope: str = '') -> Iterator[Tuple[str, Any, str]]:
    """Yield ``(key path, node, scope)``; ``_scope_`` applies below it."""
    if isinstance(node, dict):
        scope = node.get('_scope_', scope)
    yield path, node, scope
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, f'{path}.{key}' if path else str(key),
                             scope)
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            yield from _walk(value, f'{path}[{i}]', scope)


def _unknown_types(cfg: Config) -> List[str]:
    problems = []
    for path, node, scope in _walk(cfg._cfg_dict.to_dict(), ''):
        if not isinstance(node, dict) or not isinstance(node.get('type'), str):
            continue
        name = node['type']
        if scope and '.' not in name:
            name = f'{scope}.{name}'
        if not any(reg.get(name) is not None for reg in _REGISTRIES):
            problems.append(f'{path}.type: {name!r} is not a registered '
                            'component (check the spelling, or the scope '
                            'prefix such as "mmpretrain.")')
    return problems


def _clip_lens(cfg: Config) -> Iterator[Tuple[str, int]]:
    # Only what the Runner uses: a leaf config may leave an inherited
    # pipeline variable unused.
    used = {
        key: cfg.get(key)
        for key in ('train_dataloader', 'val_dataloader', 'test_dataloader',
                    'custom_hooks') if cfg.get(key) is not None
    }
    for path, node, _ in _walk(Config(used)._cfg_dict.to_dict(), ''):
        if isinstance(node, dict) and node.get(
                'type') == 'SampleTrackletFrames' and 'clip_len' in node:
            yield f'{path}.clip_len', node['clip_len']


def _batch_problems(cfg: Config, world_size: int) -> List[str]:
    loader = cfg.get('train_dataloader') or {}
    sampler = loader.get('sampler') or {}
    k = sampler.get('num_instances')
    batch = loader.get('batch_size')
    if k is None or batch is None:
        return []
    problems = []
    if sampler.get('split_global_batch', False):
        total = sampler.get('batch_size', batch)
        if total % k:
            problems.append(
                f'train_dataloader.sampler.batch_size = {total} (the global '
                'batch) is not a multiple of train_dataloader.sampler.'
                f'num_instances = {k} (each identity contributes '
                'num_instances tracklets to a batch)')
        if total % world_size or batch * world_size != total:
            problems.append(
                f'train_dataloader.batch_size = {batch} on {world_size} '
                f'processes does not split the global batch train_'
                f'dataloader.sampler.batch_size = {total} (tools/train.py '
                'sets it to the global batch // the number of processes)')
        gather = cfg.get('model', {}).get('head',
                                          {}).get('loss_triplet',
                                                  {}).get('gather', False)
        if world_size > 1 and not gather:
            problems.append(
                'train_dataloader.sampler.split_global_batch = True on '
                f'{world_size} processes needs model.head.loss_triplet.'
                'gather = True: a rank\'s slice of the global batch lacks '
                'the positives and negatives the hard mining needs')
        return problems
    if batch % k:
        problems.append(
            f'train_dataloader.batch_size = {batch} is not a multiple of '
            f'train_dataloader.sampler.num_instances = {k} (each identity '
            'contributes num_instances tracklets to a batch)')
    if sampler.get('batch_size', batch) != batch:
        problems.append(
            f'train_dataloader.sampler.batch_size = {sampler["batch_size"]}'
            f' differs from train_dataloader.batch_size = {batch}')
    return problems


def check_train_config(cfg: Config, world_size: int = 1) -> None:
    """Raise one error listing every problem found in ``cfg``.

    Checked: every ``type`` names a registered component; the frames per
    clip of every sampling transform equal ``model.neck.num_frames``; the
    training batch is a whole number of identity groups
    (``train_dataloader.batch_size`` vs ``...sampler.num_instances``, or
    for a global batch split across the processes, ``...sampler.batch_size``)
    and a split global batch is mined across the processes
    (``model.head.loss_triplet.gather``).

    Args:
        cfg (Config): The config to check.
        world_size (int): The number of training processes. Defaults to 1.

    Raises:
        ValueError: Naming each offending key.
    """
    problems = _unknown_types(cfg)

    num_frames = (cfg.get('model', {}).get('neck') or {}).get('num_frames')
    if num_frames is not None:
        for key, clip_len in _clip_lens(cfg):
            if clip_len != num_frames:
                problems.append(
                    f'{key} = {clip_len} but model.neck.num_frames = '
                    f'{num_frames}: the temporal module needs clips of '
                    'exactly that many frames')
    problems += _batch_problems(cfg, world_size)

    if problems:
        raise ValueError('The config cannot work:\n  - ' +
                         '\n  - '.join(problems))
