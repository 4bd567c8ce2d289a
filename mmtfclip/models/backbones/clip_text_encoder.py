# Copyright (c) mmtfclip contributors. All rights reserved.
import os
import os.path as osp
from collections import OrderedDict
from typing import Dict, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model import BaseModule
from open_clip.factory import get_model_config
from open_clip.transformer import LayerNorm, QuickGELU, Transformer

from mmtfclip.registry import MODELS
from .clip_weights import (find_cached_open_clip_weights, load_clip_checkpoint,
                           missing_weights_message)

# The text tower's keys in OpenAI's (and open_clip's CLIP) state dicts.
TEXT_KEYS = ('token_embedding.', 'positional_embedding', 'transformer.',
             'ln_final.', 'text_projection')


def resolve_clip_file(pretrained: str, model_name: Optional[str]) -> str:
    """The CLIP weight file behind a path or an open_clip tag.

    The same lookup as the image tower's ``pretrained`` (a file, or a tag
    found in the local caches; nothing is downloaded), so both towers read
    one file.

    Args:
        pretrained (str): A weight file or an open_clip tag.
        model_name (str, optional): The open_clip model name of a tag.

    Returns:
        str: The file.
    """
    path = osp.expanduser(pretrained)
    if osp.isfile(path):
        return path
    if model_name is not None and not (os.sep in pretrained
                                       or osp.splitext(pretrained)[1]):
        found = find_cached_open_clip_weights(model_name, pretrained)
        if found is not None:
            return found
    raise FileNotFoundError(missing_weights_message(pretrained, model_name))


def extract_text_state_dict(state_dict: Dict[str, torch.Tensor],
                            source: str) -> 'OrderedDict[str, torch.Tensor]':
    """The text tower of a whole CLIP state dict, OpenAI's key names.

    Args:
        state_dict (dict): OpenAI's layout, or open_clip's ``text.*``.
        source (str): The file, for the error message.

    Returns:
        OrderedDict: ``token_embedding.weight``, ``positional_embedding``,
        ``transformer.*``, ``ln_final.*``, ``text_projection``.
    """
    if any(k.startswith('text.') for k in state_dict):
        state_dict = {
            k[len('text.'):]: v
            for k, v in state_dict.items() if k.startswith('text.')
        }
    text = OrderedDict(
        (k, v) for k, v in state_dict.items() if k.startswith(TEXT_KEYS))
    if 'token_embedding.weight' not in text:
        raise KeyError(f'{source} has no CLIP text tower (no '
                       '"token_embedding.weight"); CLIP-ReID needs the '
                       'whole CLIP file, both towers.')
    return text


@MODELS.register_module()
class CLIPTextEncoder(BaseModule):
    """CLIP's text encoder, frozen, run on token embeddings.

    The text tower of CLIP-ReID (Li et al., AAAI 2023): prompts come in as
    token embeddings (a prompt learner puts learnable tokens among the
    template's), go through CLIP's causal transformer and final LayerNorm,
    and the end-of-text token is projected into the joint space. The parts
    are open_clip's, under OpenAI's key names; the weights come from the
    same CLIP file as the image tower (``pretrained``) and are never
    trained (every parameter has ``requires_grad=False``).

    Args:
        arch (str | dict): An open_clip model name ('ViT-B-16', ...) or a
            dict with ``width``, ``layers``, ``heads``, ``context_length``,
            ``vocab_size`` and ``output_dim``. Defaults to 'ViT-B-16'.
        pretrained (str, optional): The CLIP file or tag, as for
            ``CLIPViT``; None keeps a random initialisation (tests, demos).
            Defaults to None.
        force_quick_gelu (bool): QuickGELU, as OpenAI's CLIP. Defaults to
            True.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 arch: Union[str, Dict] = 'ViT-B-16',
                 pretrained: Optional[str] = None,
                 force_quick_gelu: bool = True,
                 init_cfg: Optional[Union[Dict, Sequence[Dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        settings, quick_gelu = self._arch_settings(arch)
        self.model_name = arch if isinstance(arch, str) else None
        self.pretrained = pretrained
        self.width = settings['width']
        self.out_dims = settings['output_dim']
        self.context_length = settings['context_length']
        self.token_embedding = nn.Embedding(settings['vocab_size'], self.width)
        self.positional_embedding = nn.Parameter(
            torch.empty(self.context_length, self.width).normal_(std=0.01))
        self.transformer = Transformer(
            self.width,
            settings['layers'],
            settings['heads'],
            act_layer=QuickGELU if quick_gelu or force_quick_gelu else nn.GELU,
            norm_layer=LayerNorm,
            batch_first=True)
        self.ln_final = LayerNorm(self.width)
        self.text_projection = nn.Parameter(
            torch.empty(self.width,
                        self.out_dims).normal_(std=self.width**-0.5))
        self.register_buffer(
            'attn_mask',
            torch.full((self.context_length, self.context_length),
                       float('-inf')).triu_(1),
            persistent=False)
        self.requires_grad_(False)

    @staticmethod
    def _arch_settings(arch: Union[str, Dict]):
        keys = {
            'width', 'layers', 'heads', 'context_length', 'vocab_size',
            'output_dim'
        }
        if isinstance(arch, dict):
            if set(arch) != keys:
                raise KeyError(f'A custom CLIPTextEncoder arch needs exactly '
                               f'the keys {sorted(keys)}; got {sorted(arch)}.')
            return dict(arch), False
        cfg = get_model_config(arch)
        if cfg is None or 'text_cfg' not in cfg:
            raise KeyError(f'"{arch}" is not an open_clip CLIP model name.')
        text = cfg['text_cfg']
        return dict(
            width=text['width'],
            layers=text['layers'],
            heads=text['heads'],
            context_length=text.get('context_length', 77),
            vocab_size=text.get('vocab_size', 49408),
            output_dim=cfg['embed_dim']), bool(cfg.get('quick_gelu', False))

    def init_weights(self) -> None:
        """Initialise, then load the text tower of ``pretrained``."""
        called_before = self.is_init
        super().init_weights()
        if called_before:
            return
        if self.pretrained is None:
            print_log(
                'CLIPTextEncoder: pretrained=None, so the text encoder keeps '
                'its RANDOM initialisation (no CLIP weights are loaded).',
                logger='current')
            return
        self.load_clip_weights(self.pretrained)

    def load_clip_weights(self, pretrained: str) -> None:
        """Load the text tower of a CLIP file or tag.

        Args:
            pretrained (str): As the ``pretrained`` argument.

        Raises:
            RuntimeError: If the weights do not fit; every missing,
                unexpected or mis-shaped key is listed.
        """
        source = resolve_clip_file(pretrained, self.model_name)
        state_dict = extract_text_state_dict(
            load_clip_checkpoint(source), source)
        own = self.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = [
            f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
            for k, v in state_dict.items()
            if k in own and v.shape != own[k].shape
        ]
        if missing or unexpected or mismatched:
            raise RuntimeError(f'The CLIP text tower in {source} does not fit '
                               'CLIPTextEncoder:\n'
                               f'  missing keys: {missing}\n'
                               f'  unexpected keys: {unexpected}\n'
                               f'  shape mismatches: {mismatched}')
        with torch.no_grad():
            for key, value in state_dict.items():
                own[key].copy_(value)
        print_log(
            f'CLIPTextEncoder: loaded the CLIP text encoder from {source}.',
            logger='current')

    def forward(self, prompts: torch.Tensor,
                tokens: torch.Tensor) -> torch.Tensor:
        """Encode prompts given as token embeddings.

        Args:
            prompts (Tensor): ``[N, context_length, width]``.
            tokens (Tensor): The token ids the prompts stand for
                ``[N or 1, context_length]``: the end-of-text token, the
                largest id, marks the feature taken.

        Returns:
            Tensor: ``[N, output_dim]``.
        """
        x = prompts + self.positional_embedding.to(prompts.dtype)
        x = self.transformer(x, attn_mask=self.attn_mask)
        x = self.ln_final(x)
        eot = tokens.argmax(dim=-1).expand(x.shape[0])
        x = x[torch.arange(x.shape[0], device=x.device), eot]
        return x @ self.text_projection

    def train(self, mode: bool = True) -> 'CLIPTextEncoder':
        """Frozen: stays in eval mode whatever the model's mode."""
        return super().train(False)
