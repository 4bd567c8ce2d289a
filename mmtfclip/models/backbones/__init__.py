# Copyright (c) mmtfclip contributors. All rights reserved.
from .clip_text_encoder import CLIPTextEncoder
from .clip_vit import CLIPViT
from .projected_backbone import ProjectedBackbone

__all__ = ['CLIPViT', 'CLIPTextEncoder', 'ProjectedBackbone']
