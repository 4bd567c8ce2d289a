# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Dict, List, Optional, Union

import open_clip
import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmtfclip.registry import MODELS


@MODELS.register_module()
class IdentityPromptLearner(BaseModule):
    """Identity-specific learnable text tokens in a fixed template.

    CLIP-ReID's prompt (Li et al., AAAI 2023): every training identity has
    ``num_tokens`` learnable token embeddings that take the place of the
    ``X`` placeholders of the template, "A photo of a X X X X person."; the
    other tokens are CLIP's embeddings of the template's words. Stage 1
    learns the tokens; stage 2 keeps them fixed.

    The template's word embeddings are looked up in the text encoder's
    (frozen) token embedding at every call, so they always match the loaded
    CLIP weights; only ``cls_ctx`` is state.

    Args:
        num_classes (int): Training identities.
        embed_dims (int): Width of the text encoder's token embedding.
            Defaults to 512.
        template (str): The prompt, with ``num_tokens`` consecutive
            placeholders ``X``. Defaults to 'A photo of a X X X X person.'.
        num_tokens (int): Learnable tokens per identity. Defaults to 4.
        context_length (int): The text encoder's context length.
            Defaults to 77.
        init_std (float): Std of the tokens' normal initialisation.
            Defaults to 0.02.
        init_cfg (dict | list[dict], optional): Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 embed_dims: int = 512,
                 template: str = 'A photo of a X X X X person.',
                 num_tokens: int = 4,
                 context_length: int = 77,
                 init_std: float = 0.02,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError('num_classes must be the number of training '
                             f'identities, got {num_classes!r}.')
        tokens = open_clip.tokenize([template], context_length)
        placeholder = int(open_clip.tokenize(['X'], context_length)[0, 1])
        ids = tokens[0].tolist()
        runs = [
            i for i in range(len(ids) - num_tokens + 1)
            if ids[i:i + num_tokens] == [placeholder] * num_tokens
        ]
        if len(runs) != 1 or ids.count(placeholder) != num_tokens:
            raise ValueError(
                f'The template {template!r} must hold exactly {num_tokens} '
                'consecutive placeholders "X" (num_tokens).')
        self.num_classes = num_classes
        self.template = template
        self.num_tokens = num_tokens
        self.start = runs[0]
        self.register_buffer('tokenized_prompts', tokens, persistent=False)
        self.cls_ctx = nn.Parameter(
            torch.empty(num_classes, num_tokens,
                        embed_dims).normal_(std=init_std))

    def forward(self, labels: torch.Tensor,
                token_embedding: nn.Embedding) -> torch.Tensor:
        """The prompts of the given identities as token embeddings.

        Args:
            labels (Tensor): Identities ``[B]``.
            token_embedding (nn.Embedding): The text encoder's.

        Returns:
            Tensor: ``[B, context_length, embed_dims]``.
        """
        with torch.no_grad():
            words = token_embedding(self.tokenized_prompts)
        words = words.to(self.cls_ctx.dtype).expand(len(labels), -1, -1)
        end = self.start + self.num_tokens
        return torch.cat(
            [words[:, :self.start], self.cls_ctx[labels], words[:, end:]],
            dim=1)
