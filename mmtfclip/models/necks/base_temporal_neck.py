# Copyright (c) mmtfclip contributors. All rights reserved.
from abc import ABCMeta, abstractmethod
from typing import Dict, List, Optional, Tuple, Union

import torch
from mmengine.model import BaseModule


class BaseTemporalNeck(BaseModule, metaclass=ABCMeta):
    """Base of the temporal necks: encoder tokens to frame and sequence
    features.

    Every temporal neck takes the tokens of the image encoder for a batch of
    clips, ``[B, T, L, C]``, and returns the frame features ``[B, T, C]``
    and the sequence features ``[B, C]`` that the head classifies. This
    class checks the input (clips of exactly ``num_frames`` frames, width
    ``embed_dims``) and detaches it if asked; subclasses implement
    :meth:`fuse`.

    Args:
        embed_dims (int): Channels of the encoder tokens. Defaults to 768.
        num_frames (int): Frames per clip (T). Inputs with another T are
            refused, so that a pipeline sampling a different T than the
            model was configured for fails early. Defaults to 8.
        detach_input (bool): Detach the encoder tokens, so that the
            temporal branch does not train the encoder (as the authors'
            TMD). Defaults to True.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 embed_dims: int = 768,
                 num_frames: int = 8,
                 detach_input: bool = True,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if num_frames < 1:
            raise ValueError(f'num_frames must be >= 1, got {num_frames}.')
        self.embed_dims = embed_dims
        self.num_frames = num_frames
        self.detach_input = detach_input

    @abstractmethod
    def fuse(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Frame and sequence features of checked tokens ``[B, T, L, C]``."""

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Compute frame and sequence features.

        Args:
            x (Tensor): Encoder tokens ``[B, T, L, C]`` (after the encoder's
                final LayerNorm).

        Returns:
            tuple[Tensor, Tensor]: Frame features ``[B, T, C]`` and sequence
            features ``[B, C]``.
        """
        name = type(self).__name__
        if x.dim() != 4 or x.shape[-1] != self.embed_dims:
            raise ValueError(f'{name} expects tokens [B, T, L, '
                             f'{self.embed_dims}], got {tuple(x.shape)}.')
        if x.shape[1] != self.num_frames:
            raise ValueError(
                f'{name} got clips of {x.shape[1]} frames but '
                f'model.neck.num_frames={self.num_frames}: the frame '
                'sampler of the pipeline must give the same T.')
        if self.detach_input:
            x = x.detach()
        return self.fuse(x)
