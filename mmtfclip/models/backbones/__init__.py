# Copyright (c) mmtfclip contributors. All rights reserved.
from .clip_text_encoder import CLIPTextEncoder
from .clip_vit import CLIPViT

__all__ = ['CLIPViT', 'CLIPTextEncoder']
