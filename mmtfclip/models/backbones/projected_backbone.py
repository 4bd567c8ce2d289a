# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmtfclip.registry import MODELS


@MODELS.register_module()
class ProjectedBackbone(BaseModule):
    """A token encoder followed by CLIP's bias-free projection.

    TF-CLIP's recognizer takes from its backbone every token of each image
    and their projection into CLIP's joint space (the class token's
    projection is the CLIP-Memory feature). ``CLIPViT`` returns both; an
    encoder that gives the tokens only, such as mmpretrain's
    ``VisionTransformer`` with ``out_type='raw'``, gets the projection
    here, so that every backbone keeps the same contract. The projection's
    weight is CLIP's ``proj`` transposed (see
    ``tools/model_converters/clip_to_mmpretrain.py``, which writes
    ``backbone.encoder.*`` and ``backbone.proj.weight``).

    Args:
        encoder (dict): Config of the token encoder. Its forward takes
            images ``[N, 3, H, W]`` and returns the tokens ``[N, L, C]``,
            or a tuple holding that one tensor (mmpretrain's ViT with
            ``out_type='raw'`` and one output index).
        in_channels (int): Token width C.
        out_channels (int): Projection width D.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 encoder: Dict,
                 in_channels: int,
                 out_channels: int,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.encoder = MODELS.build(encoder)
        name = type(self.encoder).__name__
        width = getattr(self.encoder, 'embed_dims', in_channels)
        if width != in_channels:
            raise ValueError(
                f'model.backbone.in_channels={in_channels} but the encoder '
                f'{name} is {width} wide.')
        out_type = getattr(self.encoder, 'out_type', 'raw')
        out_indices = getattr(self.encoder, 'out_indices', [-1])
        if out_type != 'raw' or len(out_indices) != 1:
            raise ValueError(
                f'The encoder {name} must return every token of one layer: '
                f"set out_type='raw' and one out_indices, got out_type="
                f'{out_type!r} and out_indices={list(out_indices)}.')
        self.embed_dims = in_channels
        self.out_dims = out_channels
        self.proj = nn.Linear(in_channels, out_channels, bias=False)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode images into tokens and project them.

        Args:
            x (Tensor): Normalised images ``[N, 3, H, W]``.

        Returns:
            tuple[Tensor, Tensor]: The tokens ``[N, L, C]`` and their
            projection ``[N, L, D]``.
        """
        tokens = self.encoder(x)
        if isinstance(tokens, (tuple, list)):
            tokens = tokens[0]
        return tokens, self.proj(tokens)
