# Copyright (c) mmtfclip contributors. All rights reserved.
"""Reading CLIP weights: OpenAI files, open_clip checkpoints and tags.

Three sources are understood:

- an OpenAI CLIP file (``ViT-B-16.pt`` and friends). OpenAI publishes them
  as TorchScript archives, and ``torch.jit.load`` runs an archive's code
  while loading it; here the weights are read out of the archive's records
  without running anything (:func:`mmtfclip.fileio.load_torchscript_weights`),
  whatever the file is called. A plain ``torch.save`` of the same state dict
  works too. When the file carries one of OpenAI's published names, its
  SHA-256 must equal the published one (the hash is part of OpenAI's URL,
  as listed in ``open_clip.pretrained``).
- an open_clip checkpoint file (``{'state_dict': ...}`` as open_clip's
  trainer saves it, optionally with ``module.`` prefixes, or a plain state
  dict; ``.safetensors`` too).
- an open_clip pretrained tag (``'openai'``, ``'laion2b_s34b_b88k'``, ...)
  for a named architecture, looked up in the local caches only: the
  Hugging Face hub cache through open_clip's own lookup with the hub forced
  offline, then open_clip's URL cache (``~/.cache/clip``). Nothing is ever
  downloaded.

``torch.save`` files are read with ``weights_only=True``
(:func:`mmtfclip.fileio.load_file`); the format is told from the content,
not the file name. Weights holding NaN or infinite values are refused,
naming the file and the key.
"""
import os
import os.path as osp
from collections import OrderedDict
from contextlib import contextmanager
from typing import Dict, Iterator, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F
from mmengine.logging import print_log
from open_clip import pretrained as oc_pretrained

# is_torchscript_archive is re-exported: it was first defined here.
from mmtfclip.fileio import (UnsafeFileError, check_finite, file_sha256,
                             is_safetensors_file, is_torchscript_archive,
                             load_file, load_safetensors,
                             load_torchscript_weights)
from mmtfclip.utils import strip_module_prefix

__all__ = [
    'openai_clip_files', 'check_openai_sha256', 'is_torchscript_archive',
    'load_clip_checkpoint', 'extract_visual_state_dict',
    'find_cached_open_clip_weights', 'load_clip_visual_weights',
    'resize_pos_embed', 'missing_weights_message'
]

_CONFIG_KEY = 'model.backbone.pretrained'


def openai_clip_files() -> Dict[str, Tuple[str, str, str]]:
    """OpenAI's published CLIP files, as listed by open_clip.

    Returns:
        dict: ``{file name: (model name, sha256, url)}``, e.g.
        ``'ViT-B-16.pt' -> ('ViT-B-16', '5806e7...', 'https://...')``.
    """
    files = {}
    for model in oc_pretrained.list_pretrained_models_by_tag('openai'):
        url = oc_pretrained.get_pretrained_url(model, 'openai')
        if 'openaipublic' not in url:
            continue
        name = osp.basename(url)
        # The '-quickgelu' aliases point at the same files; keep the plain
        # model name.
        if name not in files or len(model) < len(files[name][0]):
            files[name] = (model, url.split('/')[-2], url)
    return files


def check_openai_sha256(path: str) -> bool:
    """Check a file named like an OpenAI CLIP file against OpenAI's hash.

    Args:
        path (str): The file.

    Returns:
        bool: True if the name is a known OpenAI file and the hash matches,
        False if the name is not one of OpenAI's (nothing to check).

    Raises:
        UnsafeFileError: If the name is OpenAI's and the hash differs
            (a ``RuntimeError``).
    """
    known = openai_clip_files().get(osp.basename(path))
    if known is None:
        return False
    model, expected, url = known
    actual = file_sha256(path)
    if actual != expected:
        raise UnsafeFileError(
            f'{path} is named like OpenAI\'s CLIP {model} file but its '
            f'SHA-256 is {actual}, not the published {expected}: the file '
            f'is truncated, corrupted or another model. Download it again '
            f'from {url}. If it is a deliberate conversion of those weights '
            '(e.g. a plain state dict), give it another file name.')
    return True


def load_clip_checkpoint(path: str) -> 'OrderedDict[str, torch.Tensor]':
    """Read a CLIP weight file into a plain state dict.

    Args:
        path (str): An OpenAI CLIP file (TorchScript archive or state
            dict) or an open_clip checkpoint (``.pt``, ``.pth``, ``.bin``
            or ``.safetensors``).

    Returns:
        OrderedDict: The whole model's state dict on the CPU, without
        ``module.`` prefixes (``visual.*`` and the text tower's keys).

    Raises:
        FileNotFoundError: If the file does not exist.
        UnsafeFileError: If the file is empty, truncated or corrupt, holds
            more than tensors (a planted payload: nothing of it is run),
            is a TorchScript archive with code that would run on loading,
            holds NaN or infinite weights, or is named like an OpenAI file
            but has another SHA-256 (a ``RuntimeError``, naming the file).
        RuntimeError: If the file holds no state dict.
    """
    what = 'CLIP weight file'
    path = osp.expanduser(path)
    if not osp.isfile(path):
        raise FileNotFoundError(f'{path} can not be found.')
    if check_openai_sha256(path):
        print_log(
            f'{path}: SHA-256 matches OpenAI\'s published hash.',
            logger='current')
    if path.endswith('.safetensors') or is_safetensors_file(path):
        checkpoint = load_safetensors(path, what=what)
    elif is_torchscript_archive(path):
        checkpoint = load_torchscript_weights(path, what=what)
    else:
        checkpoint = load_file(path, what=what)
    if isinstance(checkpoint, dict) and isinstance(
            checkpoint.get('state_dict'), dict):
        checkpoint = checkpoint['state_dict']
    if not isinstance(checkpoint, dict) or not checkpoint or not all(
            isinstance(v, torch.Tensor) for v in checkpoint.values()):
        raise RuntimeError(
            f'{path} holds no CLIP state dict (expected a mapping of '
            'names to tensors, or {"state_dict": ...}).')
    checkpoint = strip_module_prefix(checkpoint)
    # An attention mask is -inf above its diagonal by construction (the
    # text tower's, kept as a buffer by scripted open_clip models); it is
    # not a weight.
    weights = {
        k: v
        for k, v in checkpoint.items() if not k.endswith('attn_mask')
    }
    check_finite(weights, path, what=what)
    return OrderedDict((k, v.detach()) for k, v in checkpoint.items())


def extract_visual_state_dict(
        state_dict: Dict[str, torch.Tensor],
        source: str = 'the state dict') -> 'OrderedDict[str, torch.Tensor]':
    """Take the image tower out of a CLIP state dict.

    Args:
        state_dict (dict): A whole CLIP state dict (``visual.*`` keys plus
            the text tower, which is left out) or an image tower's own state
            dict (``conv1.weight``, ``class_embedding``, ...).
        source (str): Where the state dict comes from, for error messages.
            Defaults to 'the state dict'.

    Returns:
        OrderedDict: The image tower's keys without the ``visual.`` prefix.

    Raises:
        KeyError: If neither layout is recognised.
    """
    visual = OrderedDict((k[len('visual.'):], v)
                         for k, v in state_dict.items()
                         if k.startswith('visual.'))
    if visual:
        return visual
    if 'conv1.weight' in state_dict and 'class_embedding' in state_dict:
        return OrderedDict(state_dict)
    sample = ', '.join(list(state_dict)[:8])
    raise KeyError(
        f'{source} has no CLIP image tower: expected OpenAI/open_clip keys '
        f'such as "visual.conv1.weight" (or "conv1.weight"), found '
        f'{sample}, ...')


@contextmanager
def _hf_hub_offline() -> Iterator[None]:
    """Force the Hugging Face hub client offline, so lookups hit the cache
    only and never the network."""
    try:
        from huggingface_hub import constants
    except ImportError:
        yield
        return
    previous = constants.HF_HUB_OFFLINE
    constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        constants.HF_HUB_OFFLINE = previous


def find_cached_open_clip_weights(
        model_name: str,
        tag: str,
        cache_dir: Optional[str] = None) -> Optional[str]:
    """Find open_clip's pretrained weights for ``model_name:tag`` locally.

    The Hugging Face hub cache is searched through open_clip's own lookup
    with the hub forced offline; then open_clip's URL cache
    (``cache_dir`` or ``~/.cache/clip``), where a file with a published
    hash must match it. Nothing is downloaded.

    Args:
        model_name (str): An open_clip model name, e.g. 'ViT-B-16'.
        tag (str): A pretrained tag of that model, e.g. 'openai'.
        cache_dir (str, optional): The cache folder open_clip was given
            when it downloaded; None for the defaults (``HF_HUB_CACHE`` and
            ``~/.cache/clip``). Defaults to None.

    Returns:
        str | None: The cached file, or None when it is not cached.

    Raises:
        ValueError: If open_clip has no such tag for the model.
    """
    cfg = oc_pretrained.get_pretrained_cfg(model_name, tag)
    if not cfg:
        tags = oc_pretrained.list_pretrained_tags_by_model(model_name)
        raise ValueError(
            f'open_clip has no pretrained tag "{tag}" for {model_name} '
            f'(its tags: {tags}). Set {_CONFIG_KEY} to a weight file or to '
            'one of those tags.')
    if cfg.get('hf_hub') and oc_pretrained.has_hf_hub():
        with _hf_hub_offline():
            try:
                return oc_pretrained.download_pretrained(
                    {'hf_hub': cfg['hf_hub']},
                    prefer_hf_hub=True,
                    cache_dir=cache_dir)
            except (OSError, RuntimeError):
                pass
    url = cfg.get('url', '')
    if url:
        target = osp.join(
            cache_dir or osp.expanduser('~/.cache/clip'), osp.basename(url))
        if osp.isfile(target):
            # open_clip re-downloads a cached file whose hash is wrong;
            # check first so that it only ever returns the cached path.
            check_openai_sha256(target)
            return oc_pretrained.download_pretrained({'url': url},
                                                     prefer_hf_hub=False,
                                                     cache_dir=cache_dir)
    return None


def missing_weights_message(pretrained: str,
                            model_name: Optional[str] = None) -> str:
    """The error text when CLIP weights cannot be found.

    Args:
        pretrained (str): What ``model.backbone.pretrained`` says.
        model_name (str, optional): The backbone's open_clip model name.
            Defaults to None.

    Returns:
        str: Which file to get, where to put it, which config key to set.
    """
    base = (model_name or 'ViT-B-16').replace('-quickgelu', '')
    cfg = oc_pretrained.get_pretrained_cfg(base, 'openai')
    url = cfg.get('url', '')
    file_name = osp.basename(url) if url else f'{base}.pt'
    looks_like_path = (os.sep in pretrained or '.' in osp.basename(pretrained))
    where = (
        osp.abspath(osp.expanduser(pretrained)) if looks_like_path else
        osp.join(osp.expanduser('~/.cache/clip'), file_name))
    lines = [
        f'No CLIP weights found for {_CONFIG_KEY}={pretrained!r}.',
        f'Get OpenAI\'s CLIP {base} weights, {file_name}' +
        (f', from {url} (SHA-256 {url.split("/")[-2]})' if url else '') + '.',
        f'Put the file at {where}' +
        ('' if looks_like_path else
         f' (where the tag "{pretrained}" is looked up)') + ', or anywhere',
        f'and set {_CONFIG_KEY} to its path in the config (or run with '
        f'--cfg-options {_CONFIG_KEY}=/path/to/{file_name}).',
        'open_clip checkpoints and open_clip tags already in the local '
        'cache work too; nothing is downloaded. For a random '
        f'initialisation (tests, demos), set {_CONFIG_KEY}=None.',
    ]
    return '\n'.join(lines)


def load_clip_visual_weights(
    pretrained: str,
    model_name: Optional[str] = None,
    cache_dir: Optional[str] = None
) -> Tuple['OrderedDict[str, torch.Tensor]', str]:
    """Read the CLIP image tower's weights from a file or a cached tag.

    Args:
        pretrained (str): A weight file (see :func:`load_clip_checkpoint`)
            or an open_clip pretrained tag such as 'openai'.
        model_name (str, optional): The open_clip model name the tag
            belongs to; a tag needs it. Defaults to None.
        cache_dir (str, optional): See
            :func:`find_cached_open_clip_weights`. Defaults to None.

    Returns:
        tuple: The image tower's state dict (OpenAI key names without
        ``visual.``, tensors as stored) and the file it was read from.

    Raises:
        FileNotFoundError: If no weights are found; the message says what
            to get, where to put it and which config key to set.
    """
    path = osp.expanduser(pretrained)
    if osp.isfile(path):
        source = path
    elif os.sep in pretrained or osp.splitext(pretrained)[1]:
        raise FileNotFoundError(
            missing_weights_message(pretrained, model_name))
    elif model_name is None:
        raise FileNotFoundError(
            f'{pretrained!r} is neither a file nor usable as an open_clip '
            'tag: a tag needs the backbone arch to be an open_clip model '
            'name (e.g. arch="ViT-B-16"), not a dict.\n' +
            missing_weights_message(pretrained, model_name))
    else:
        source = find_cached_open_clip_weights(
            model_name, pretrained, cache_dir=cache_dir)
        if source is None:
            raise FileNotFoundError(
                missing_weights_message(pretrained, model_name))
    state_dict = load_clip_checkpoint(source)
    return extract_visual_state_dict(state_dict, source), source


def resize_pos_embed(pos_embed: torch.Tensor,
                     src_grid: Sequence[int],
                     dst_grid: Sequence[int],
                     mode: str = 'bilinear') -> torch.Tensor:
    """Resize a ViT positional embedding to another patch grid.

    The class token's embedding is kept; the grid part is interpolated as
    an image with ``F.interpolate`` (its default ``align_corners``). The
    arithmetic runs in float32 and the result is rounded back to the input
    dtype, which for OpenAI's float16 files equals interpolating in float16
    as TF-CLIP's authors do.

    Args:
        pos_embed (Tensor): ``[1 + src_h * src_w, C]``.
        src_grid (Sequence[int]): ``(src_h, src_w)``.
        dst_grid (Sequence[int]): ``(dst_h, dst_w)``.
        mode (str): Interpolation mode of ``F.interpolate``.
            Defaults to 'bilinear'.

    Returns:
        Tensor: ``[1 + dst_h * dst_w, C]``.
    """
    src_h, src_w = src_grid
    dst_h, dst_w = dst_grid
    if pos_embed.dim() != 2 or pos_embed.shape[0] != 1 + src_h * src_w:
        raise ValueError(
            f'positional_embedding of shape {tuple(pos_embed.shape)} is not '
            f'[1 + {src_h}*{src_w}, C].')
    if (src_h, src_w) == (dst_h, dst_w):
        return pos_embed
    cls_pos, grid = pos_embed[:1], pos_embed[1:]
    channels = grid.shape[1]
    grid = grid.reshape(1, src_h, src_w, channels).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=(dst_h, dst_w), mode=mode)
    grid = grid.permute(0, 2, 3, 1).reshape(dst_h * dst_w, channels)
    return torch.cat([cls_pos, grid.to(pos_embed.dtype)], dim=0)
