# Copyright (c) mmtfclip contributors. All rights reserved.
import copy
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Union

import numpy as np
import torch
import torch.nn as nn
from mmengine.config import Config
from mmengine.dataset import Compose, pseudo_collate
from mmengine.logging import print_log
from mmengine.registry import init_default_scope

from mmtfclip.compat import load_checkpoint
from mmtfclip.registry import MODELS

ConfigType = Union[str, Path, Config]

# The weights that depend on the number of training identities.
_ID_KEYS = ('head.cls_classifier.weight', 'head.proj_classifier.weight',
            'head.temporal_classifier.weight', 'head.frame_classifier.weight',
            'head.clip_memory')
# Backbone settings compared with the config a Runner checkpoint was
# trained with (the weights' shapes alone cannot tell them apart).
_BACKBONE_SETTINGS = ('img_size', 'stride_size')


class CheckpointMismatchError(ValueError):
    """A checkpoint that does not fit the model built from the config."""


def _drop_pretrained(model_cfg: Config) -> None:
    """No pretrained weights are needed under a full checkpoint."""
    for cfg in (model_cfg, model_cfg.get('backbone')):
        if cfg is None:
            continue
        if 'pretrained' in cfg:
            cfg['pretrained'] = None
        init_cfg = cfg.get('init_cfg')
        if isinstance(init_cfg, dict) and init_cfg.get('type') == 'Pretrained':
            cfg['init_cfg'] = None


def _strip_module(state_dict: Dict[str, torch.Tensor]) -> Dict:
    return {
        (k[len('module.'):] if k.startswith('module.') else k): v
        for k, v in state_dict.items()
    }


def _trained_setting(meta: dict, section: str, key: str):
    """A setting of the config recorded in a Runner checkpoint's meta."""
    text = meta.get('cfg')
    if not isinstance(text, str):
        return None
    try:
        cfg = Config.fromstring(text, '.py')
    except Exception:  # an unreadable recorded config just gives no hint
        return None
    return cfg.get('model', {}).get(section, {}).get(key)


def _pair(value):
    return (value, value) if isinstance(value, int) else tuple(value)


def check_checkpoint(model: nn.Module, state_dict: Dict[str, torch.Tensor],
                     meta: Optional[dict], source: str) -> None:
    """Check that a checkpoint fits a model, saying what differs in words.

    Args:
        model (nn.Module): The model built from the config.
        state_dict (dict): The checkpoint's weights (no ``module.``).
        meta (dict, optional): The checkpoint's ``meta``: a Runner's
            (``cfg``, the config text) or the converter's (``num_frames``).
        source (str): The checkpoint's name, for the message.

    Raises:
        CheckpointMismatchError: Listing every mismatch.
    """
    meta = meta or {}
    own = model.state_dict()
    problems: List[str] = []
    cam_key = 'backbone.cam_embed'
    ckpt_cams = state_dict[cam_key].shape[0] if cam_key in state_dict else 0
    model_cams = own[cam_key].shape[0] if cam_key in own else 0
    if ckpt_cams != model_cams:
        if not model_cams:
            problems.append(f'the checkpoint has a camera embedding (SIE) for '
                            f'{ckpt_cams} cameras but the config has none '
                            '(set model.backbone.num_cams)')
        elif not ckpt_cams:
            problems.append(
                'the config has a camera embedding (SIE) for '
                f'{model_cams} cameras (model.backbone.num_cams) but the '
                'checkpoint was trained without one')
        else:
            problems.append(
                f'the checkpoint\'s camera embedding is for {ckpt_cams} '
                f'cameras, the config\'s for {model_cams} '
                '(model.backbone.num_cams)')

    pos_key = 'backbone.positional_embedding'
    if pos_key in state_dict and pos_key in own and (state_dict[pos_key].shape
                                                     != own[pos_key].shape):
        backbone = model.backbone
        grid = getattr(backbone, 'patch_grid', None)
        problems.append(
            f'the checkpoint\'s positional embedding has '
            f'{state_dict[pos_key].shape[0] - 1} patch positions but the '
            f'config gives {own[pos_key].shape[0] - 1}' +
            (f' ({grid[0]} x {grid[1]} patches from img_size='
             f'{getattr(backbone, "img_size", None)}, stride_size='
             f'{getattr(backbone, "stride_size", None)})' if grid else '') +
            ': the input size or the patch stride differs')

    id_counts = {
        k: state_dict[k].shape[0]
        for k in _ID_KEYS if k in state_dict and k in own
    }
    num_classes = getattr(model.head, 'num_classes', None)
    ckpt_ids = sorted(set(id_counts.values()))
    if ckpt_ids and ckpt_ids != [num_classes]:
        problems.append(
            f'the checkpoint was trained with {ckpt_ids[0]} identities, the '
            f'config has {num_classes} (model.head.num_classes)')

    model_frames = getattr(model, 'num_frames', None)
    ckpt_frames = meta.get('num_frames',
                           _trained_setting(meta, 'neck', 'num_frames'))
    if (model_frames is not None and ckpt_frames is not None
            and ckpt_frames != model_frames):
        problems.append(
            f'the checkpoint was trained with clips of {ckpt_frames} frames, '
            f'the config has {model_frames} (model.neck.num_frames)')
    for key in _BACKBONE_SETTINGS:
        trained = _trained_setting(meta, 'backbone', key)
        current = getattr(model.backbone, key, None)
        if (trained is not None and current is not None
                and _pair(trained) != _pair(current)):
            problems.append(f'model.backbone.{key} is {current} in the '
                            f'config but was {trained} in training')

    # The camera embedding is explained above; a checkpoint without a
    # memory is fine (see init_model).
    missing = [
        k for k in own
        if k not in state_dict and k not in (cam_key, 'head.clip_memory')
    ]
    unexpected = [k for k in state_dict if k not in own and k != cam_key]
    reshaped = {cam_key, pos_key, *_ID_KEYS}
    mismatched = [
        f'{k}: checkpoint {tuple(v.shape)}, model {tuple(own[k].shape)}'
        for k, v in state_dict.items()
        if k in own and k not in reshaped and v.shape != own[k].shape
    ]
    if missing:
        problems.append(f'weights missing from the checkpoint: {missing}')
    if unexpected:
        problems.append(f'weights the model does not have: {unexpected}')
    if mismatched:
        problems.append(f'weights of another shape: {mismatched}')
    if problems:
        raise CheckpointMismatchError(
            f'The checkpoint {source} does not fit the config:\n' +
            '\n'.join(f'  - {p}' for p in problems))


def init_model(config: ConfigType,
               checkpoint: Optional[str] = None,
               device: Union[str, torch.device] = 'cpu',
               cfg_options: Optional[dict] = None) -> nn.Module:
    """Build a model from a config and load a checkpoint.

    With a checkpoint, the backbone's pretrained CLIP weights are not
    needed and not read (``pretrained`` and ``Pretrained`` init configs
    are dropped). The checkpoint is read onto the CPU first, so one saved
    on a GPU loads on a machine without one. A checkpoint without
    ``head.clip_memory`` (e.g. converted from the authors' code) loads
    with a zero memory: test embeddings do not use it, training rebuilds
    it with ``CLIPMemoryHook``.

    Args:
        config (str | Path | Config): Config file or object.
        checkpoint (str, optional): Checkpoint path or URL. None builds the
            model with the config's initialisation (pretrained CLIP
            weights). Defaults to None.
        device (str | torch.device): Where to put the model.
            Defaults to 'cpu'.
        cfg_options (dict, optional): Overrides of the config.
            Defaults to None.

    Returns:
        nn.Module: The model in eval mode, with the config as ``model.cfg``.

    Raises:
        CheckpointMismatchError: If the checkpoint does not fit the config
            (camera embedding, input size or patch stride, identities,
            frames per clip, or other weights); every mismatch is listed.
    """
    if isinstance(config, (str, Path)):
        config = Config.fromfile(str(config))
    elif isinstance(config, Config):
        config = copy.deepcopy(config)
    else:
        raise TypeError('config must be a file path or a Config, got '
                        f'{type(config)}.')
    if cfg_options:
        config.merge_from_dict(cfg_options)
    init_default_scope(config.get('default_scope', 'mmtfclip'))
    model_cfg = copy.deepcopy(config.model)
    if checkpoint is not None:
        _drop_pretrained(model_cfg)
    model = MODELS.build(model_cfg)
    if checkpoint is None:
        model.init_weights()
    else:
        ckpt = load_checkpoint(checkpoint, map_location='cpu')
        state_dict = ckpt.get('state_dict', ckpt) if isinstance(ckpt,
                                                                dict) else ckpt
        if not isinstance(state_dict, dict):
            raise TypeError(f'{checkpoint} holds no state dict.')
        state_dict = _strip_module(state_dict)
        meta = ckpt.get('meta') if isinstance(ckpt.get('meta'), dict) else {}
        check_checkpoint(model, state_dict, meta, str(checkpoint))
        if 'head.clip_memory' not in state_dict and 'head.clip_memory' in (
                model.state_dict()):
            print_log(
                f'{checkpoint} has no CLIP-Memory; the model keeps a zero '
                'memory (not used by test embeddings; CLIPMemoryHook builds '
                'one for training).',
                logger='current')
        model.load_state_dict(state_dict, strict=False)
    model.cfg = config
    model.to(device)
    model.eval()
    return model


def get_test_pipeline(cfg: Config) -> List[dict]:
    """The config's test pipeline: ``test_pipeline`` if set, else the
    pipeline of the (first) dataset of ``test_dataloader``, the query set.

    Args:
        cfg (Config): A full config.

    Returns:
        list[dict]: A copy of the pipeline's transform configs.
    """
    if cfg.get('test_pipeline') is not None:
        return copy.deepcopy(cfg.test_pipeline)
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    while 'pipeline' not in dataset:
        if dataset.get('datasets'):
            dataset = dataset['datasets'][0]
        elif dataset.get('dataset'):
            dataset = dataset['dataset']
        else:
            raise KeyError('No test pipeline in the config: set '
                           '`test_pipeline` or test_dataloader.dataset.')
    return copy.deepcopy(dataset['pipeline'])


class _FramesFromArray:
    """Stands for the frame loader when the frames are given as arrays."""

    def __call__(self, results: dict) -> dict:
        imgs = results['frame_array'][results['frame_inds']]
        results['imgs'] = np.ascontiguousarray(imgs)
        results['img_shape'] = imgs.shape[1:3]
        results['ori_shape'] = imgs.shape[1:3]
        return results


def _is_loader(transform: dict) -> bool:
    return str(transform.get('type',
                             '')).split('.')[-1] == ('LoadTrackletFrames')


def extract_tracklet_features(model: nn.Module,
                              tracklets: Sequence[Union[Sequence[str],
                                                        np.ndarray]],
                              camids: Optional[Sequence[int]] = None,
                              batch_size: int = 8) -> torch.Tensor:
    """Embed tracklets with the config's test pipeline.

    Each tracklet goes through the test pipeline of ``model.cfg`` (frame
    sampling, e.g. dense clips, resizing, packing) and the model's test
    mode (dense clips averaged).

    Args:
        model (nn.Module): A model from :func:`init_model`.
        tracklets (Sequence): Each a list of frame paths in temporal order,
            or a uint8 RGB array ``[T, H, W, 3]``.
        camids (Sequence[int], optional): 0-based camera of each tracklet;
            required when the model uses SIE. Defaults to None.
        batch_size (int): Tracklets per forward when their clips have the
            same shape (dense tracklets of different clip counts go
            together). Defaults to 8.

    Returns:
        Tensor: ``[N, D]`` float32 embeddings on the CPU, in input order.
    """
    cfg = getattr(model, 'cfg', None)
    if cfg is None:
        raise ValueError('The model has no config (model.cfg): build it '
                         'with mmtfclip.apis.init_model.')
    if camids is None:
        if getattr(model, 'use_camera_ids', False):
            raise ValueError(
                'The model uses camera ids (SIE): pass `camids`, one '
                '0-based camera per tracklet.')
        camids = [0] * len(tracklets)
    if len(camids) != len(tracklets):
        raise ValueError(f'Got {len(camids)} camids for {len(tracklets)} '
                         'tracklets.')
    pipeline_cfg = get_test_pipeline(cfg)
    init_default_scope(cfg.get('default_scope', 'mmtfclip'))
    file_pipeline = Compose(pipeline_cfg)
    array_pipeline = None

    packed = []
    for i, (tracklet, camid) in enumerate(zip(tracklets, camids)):
        info = dict(pid=-1, camid=int(camid), tracklet_id=i, split='query')
        if isinstance(tracklet, np.ndarray):
            if (tracklet.dtype != np.uint8 or tracklet.ndim != 4
                    or tracklet.shape[-1] != 3 or not len(tracklet)):
                raise ValueError(
                    f'Tracklet {i}: an array must be uint8 RGB [T, H, W, 3] '
                    f'with T >= 1, got {tracklet.dtype} '
                    f'{tuple(tracklet.shape)}.')
            if array_pipeline is None:
                if not any(_is_loader(t) for t in pipeline_cfg):
                    raise ValueError(
                        'The test pipeline has no LoadTrackletFrames step to '
                        'replace with the given arrays.')
                array_pipeline = Compose([
                    _FramesFromArray() if _is_loader(t) else t
                    for t in pipeline_cfg
                ])
            info.update(
                frame_array=tracklet,
                frame_paths=[
                    f'<tracklet {i} frame {k}>' for k in range(len(tracklet))
                ])
            packed.append(array_pipeline(info))
        else:
            paths = [str(p) for p in tracklet]
            if not paths:
                raise ValueError(f'Tracklet {i} has no frame.')
            info.update(frame_paths=paths)
            packed.append(file_pipeline(info))

    features = []
    start = 0
    with torch.no_grad():
        while start < len(packed):
            first = packed[start]['inputs']
            stop = start + 1
            # Clips [T, 3, H, W] of the same shape batch together, whatever
            # the number of dense clips [N, T, 3, H, W] of each tracklet.
            while (stop < len(packed) and stop - start < batch_size
                   and packed[stop]['inputs'].dim() == first.dim()
                   and packed[stop]['inputs'].shape[-4:] == first.shape[-4:]):
                stop += 1
            samples = model.test_step(pseudo_collate(packed[start:stop]))
            features.extend(s.pred_feature.float().cpu() for s in samples)
            start = stop
    return torch.stack(features)
