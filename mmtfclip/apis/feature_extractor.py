# Copyright (c) mmtfclip contributors. All rights reserved.
from pathlib import Path
from typing import Any, Optional, Sequence, Union

import torch
from mmengine.config import Config

from .inference import extract_tracklet_features, init_model


class TrackletFeatureExtractor:
    """Embed tracklets in one call, as torchreid's ``FeatureExtractor``.

    Builds the model of ``config`` with the weights of ``checkpoint``
    (:func:`init_model`) once; calling it embeds tracklets with
    :func:`extract_tracklet_features`.

    Example::

        >>> extractor = TrackletFeatureExtractor(
        ...     'configs/tfclip_mars.py', 'work_dirs/epoch_80.pth', 'cuda')
        >>> feats = extractor(['query/0001', 'gallery/0042'], camids=[0, 3])
        >>> feats.shape
        torch.Size([2, 2048])

    Args:
        config (str | Path | Config): The model's config.
        checkpoint (str): Its checkpoint.
        device (str | torch.device): Where the model runs.
            Defaults to 'cpu'.
        cfg_options (dict, optional): Overrides of the config.
            Defaults to None.
        batch_size (int): Tracklets per forward. Defaults to 8.
    """

    def __init__(self,
                 config: Union[str, Path, Config],
                 checkpoint: str,
                 device: Union[str, torch.device] = 'cpu',
                 cfg_options: Optional[dict] = None,
                 batch_size: int = 8) -> None:
        self.model = init_model(config, checkpoint, device, cfg_options)
        self.batch_size = batch_size

    def __call__(self,
                 tracklets: Sequence[Any],
                 camids: Optional[Sequence[int]] = None,
                 channel_order: str = 'rgb') -> torch.Tensor:
        """Embed tracklets.

        Args:
            tracklets (Sequence): Each a folder path, a list of frame paths,
                a list of PIL images, a list of ``H x W x 3`` uint8 arrays
                or one ``[T, H, W, 3]`` uint8 array.
            camids (Sequence[int], optional): 0-based camera of each
                tracklet; required when the model uses SIE. Defaults to
                None.
            channel_order (str): ``'rgb'`` or ``'bgr'``, the arrays'
                layout. Defaults to 'rgb'.

        Returns:
            Tensor: ``[N, D]`` float32 embeddings on the CPU (not
            L2-normalised).
        """
        return extract_tracklet_features(
            self.model,
            tracklets,
            camids=camids,
            channel_order=channel_order,
            batch_size=self.batch_size)
