# Copyright (c) mmtfclip contributors. All rights reserved.
import math
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.utils.checkpoint as cp
from mmengine.logging import print_log
from mmengine.model import BaseModule
from mmengine.model.weight_init import trunc_normal_
from open_clip.factory import get_model_config
from open_clip.transformer import (QuickGELU, ResidualAttentionBlock,
                                   VisionTransformer)

from mmtfclip.registry import MODELS
from ..utils.attention import MultiheadAttention
from .clip_weights import load_clip_visual_weights, resize_pos_embed

# Features of open_clip vision towers that change the architecture away
# from OpenAI's CLIP ViT (and its state-dict keys).
_UNSUPPORTED_VISION_CFG = ('timm_model_name', 'attentional_pool',
                           'ls_init_value', 'no_ln_pre', 'qk_norm',
                           'scaled_cosine_attn', 'scale_heads',
                           'scale_attn_inner', 'scale_attn', 'scale_fc')


class _LayerNorm(nn.LayerNorm):
    """LayerNorm with float32 statistics that keeps the input's dtype.

    OpenAI's CLIP normalises in float32 whatever the input (open_clip's
    ``LayerNormFp32``: a float32 copy of the input, then a cast back), and
    CUDA autocast runs ``layer_norm`` in float32 too. PyTorch's kernel
    already accumulates in float32 and takes float32 weights with bf16 or
    fp16 inputs, so calling it outside autocast gives the same result
    without the two extra passes over the activations.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight, bias = self.weight, self.bias
        if x.dtype == torch.float32 and weight.dtype != torch.float32:
            weight, bias = weight.float(), bias.float()
        with torch.autocast(x.device.type, enabled=False):
            return F.layer_norm(x, self.normalized_shape, weight, bias,
                                self.eps)


class _ResidualBlock(nn.Module):
    """A pre-norm CLIP encoder block on batch-first tokens ``[N, L, C]``.

    Holds the modules of an open_clip ``ResidualAttentionBlock`` under the
    same names (so the state-dict keys are OpenAI's), with its
    ``nn.MultiheadAttention``, which transposes to sequence-first inside,
    swapped for a batch-first one on ``scaled_dot_product_attention`` that
    keeps the same parameters.

    Args:
        block (ResidualAttentionBlock): The open_clip block to take the
            modules from.
    """

    def __init__(self, block: ResidualAttentionBlock) -> None:
        super().__init__()
        self.ln_1 = block.ln_1
        self.attn = MultiheadAttention.from_torch(block.attn)
        self.ln_2 = block.ln_2
        self.mlp = block.mlp

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


def _to_pair(value: Union[int, Sequence[int]], name: str) -> Tuple[int, int]:
    if isinstance(value, int):
        return value, value
    value = tuple(value)
    if len(value) != 2 or not all(isinstance(v, int) for v in value):
        raise TypeError(f'{name} must be an int or (h, w), got {value!r}.')
    return value


@MODELS.register_module()
class CLIPViT(BaseModule):
    """CLIP's image encoder (ViT) giving every token, for video ReID.

    The encoder of TF-CLIP (Yu et al., AAAI 2024) and CLIP-ReID: OpenAI
    CLIP's vision transformer with the positional embedding resized to the
    person-image grid (256 x 128 gives 16 x 8 patches), an optional
    overlapping patch stride and SIE, a learned per-camera embedding added
    to the class token before the positional embedding. Unlike CLIP's
    ``encode_image`` it returns all tokens after ``ln_post`` and all of
    them projected, so that necks can use the patch tokens.

    The parts are open_clip's (``conv1``, ``transformer``, ...) kept as
    direct children, so the state-dict keys are OpenAI's ``visual.*`` keys
    without the prefix, plus ``cam_embed`` when SIE is on.

    Args:
        arch (str | dict): An open_clip ViT model name ('ViT-B-16',
            'ViT-B-32', 'ViT-L-14', ...; a '-quickgelu' name implies
            QuickGELU) or a dict with keys ``width``, ``layers``, ``heads``,
            ``patch_size``, ``output_dim`` and optionally ``mlp_ratio``
            (default 4.0). Defaults to 'ViT-B-16'.
        img_size (int | Sequence[int]): Input size ``(h, w)``.
            Defaults to (256, 128).
        stride_size (int | Sequence[int]): Patch stride ``(h, w)``; smaller
            than the patch size gives overlapping patches. Defaults to 16.
        num_cams (int): Number of cameras for SIE; 0 disables it.
            Defaults to 0.
        sie_coef (float): Scale of the camera embedding. Defaults to 1.0.
        pretrained (str, optional): CLIP weights loaded by
            :meth:`init_weights`: an OpenAI ``.pt`` (TorchScript archive or
            state dict), an open_clip checkpoint, or an open_clip tag such
            as 'openai' already in the local cache. None keeps the random
            initialisation (and says so in the log). Defaults to None.
        interpolate_mode (str): ``F.interpolate`` mode for resizing the
            pretrained positional embedding. Defaults to 'bilinear'.
        force_quick_gelu (bool): Use QuickGELU, as OpenAI's CLIP was
            trained with. Defaults to True.
        with_cp (bool): Recompute each encoder block in the backward pass
            (activation checkpointing) instead of keeping its activations:
            less memory, about a third more compute, the same results.
            Defaults to False.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 arch: Union[str, Dict] = 'ViT-B-16',
                 img_size: Union[int, Sequence[int]] = (256, 128),
                 stride_size: Union[int, Sequence[int]] = 16,
                 num_cams: int = 0,
                 sie_coef: float = 1.0,
                 pretrained: Optional[str] = None,
                 interpolate_mode: str = 'bilinear',
                 force_quick_gelu: bool = True,
                 with_cp: bool = False,
                 init_cfg: Optional[Union[Dict, Sequence[Dict]]] = None):
        super().__init__(init_cfg=init_cfg)
        settings, quick_gelu = self._arch_settings(arch)
        self.arch = arch
        self.model_name = arch if isinstance(arch, str) else None
        self.img_size = _to_pair(img_size, 'img_size')
        self.stride_size = _to_pair(stride_size, 'stride_size')
        self.patch_size = settings['patch_size']
        self.pretrained = pretrained
        self.interpolate_mode = interpolate_mode
        self.quick_gelu = quick_gelu or force_quick_gelu
        self.embed_dims = settings['width']
        self.out_dims = settings['output_dim']
        self.sie_coef = sie_coef
        self.with_cp = with_cp
        if num_cams < 0:
            raise ValueError(f'num_cams must be >= 0, got {num_cams}.')
        self.num_cams = num_cams

        grid = []
        for size, stride, side in zip(self.img_size, self.stride_size,
                                      ('height', 'width')):
            if size < self.patch_size:
                raise ValueError(
                    f'img_size {side} {size} is smaller than the patch size '
                    f'{self.patch_size}.')
            grid.append((size - self.patch_size) // stride + 1)
            left = (size - self.patch_size) % stride
            if left:
                print_log(
                    f'CLIPViT: the last {left} pixel(s) of the image {side} '
                    f'({size}) are not covered by a patch (patch '
                    f'{self.patch_size}, stride {stride}).',
                    logger='current')
        self.patch_grid = tuple(grid)

        # open_clip builds the parts, on a one-patch image: the patch stride
        # and the positional embedding are this model's own.
        vit = VisionTransformer(
            image_size=self.patch_size,
            patch_size=self.patch_size,
            width=settings['width'],
            layers=settings['layers'],
            heads=settings['heads'],
            mlp_ratio=settings['mlp_ratio'],
            output_dim=settings['output_dim'],
            act_layer=QuickGELU if self.quick_gelu else nn.GELU,
            norm_layer=_LayerNorm)
        width = settings['width']
        self.conv1 = vit.conv1
        self.conv1.stride = self.stride_size
        self.class_embedding = vit.class_embedding
        self.positional_embedding = nn.Parameter(
            width**-0.5 *
            torch.randn(1 + self.patch_grid[0] * self.patch_grid[1], width))
        self.ln_pre = vit.ln_pre
        self.transformer = vit.transformer
        self.transformer.resblocks = nn.ModuleList(
            _ResidualBlock(block) for block in vit.transformer.resblocks)
        self.ln_post = vit.ln_post
        self.proj = vit.proj
        if num_cams > 0:
            self.cam_embed = nn.Parameter(torch.zeros(num_cams, width))
            trunc_normal_(self.cam_embed, std=.02)

    @staticmethod
    def _arch_settings(arch: Union[str, Dict]) -> Tuple[Dict, bool]:
        """Width, depth, heads, patch size, output dim and QuickGELU flag."""
        if isinstance(arch, dict):
            essential = {
                'width', 'layers', 'heads', 'patch_size', 'output_dim'
            }
            unknown = set(arch) - essential - {'mlp_ratio'}
            if not essential <= set(arch) or unknown:
                raise KeyError(
                    f'A custom CLIPViT arch needs the keys {sorted(essential)}'
                    f' (and optionally mlp_ratio); got {sorted(arch)}.')
            return dict(mlp_ratio=4.0, **arch), False
        if not isinstance(arch, str):
            raise TypeError(f'arch must be a str or dict, got {type(arch)}.')
        cfg = get_model_config(arch)
        if cfg is None:
            raise KeyError(
                f'"{arch}" is not an open_clip model name; use one such as '
                '"ViT-B-16", "ViT-B-32" or "ViT-L-14" (see '
                '`open_clip.list_models()`), or a dict arch.')
        vision = cfg['vision_cfg']
        unsupported = [
            key for key in _UNSUPPORTED_VISION_CFG if vision.get(key)
        ]
        if vision.get('pool_type', 'tok') != 'tok':
            unsupported.append('pool_type')
        if vision.get('pos_embed_type', 'learnable') != 'learnable':
            unsupported.append('pos_embed_type')
        if (unsupported or not isinstance(vision.get('layers'), int)
                or vision.get('norm_kwargs') or vision.get('act_kwargs')):
            raise ValueError(
                f'open_clip model "{arch}" is not an OpenAI-style CLIP ViT '
                f'(it sets {unsupported or "a non-ViT image tower"}); '
                'CLIPViT supports plain ViTs such as ViT-B-16 or ViT-L-14.')
        head_width = vision.get('head_width', 64)
        return dict(
            width=vision['width'],
            layers=vision['layers'],
            heads=vision['width'] // head_width,
            patch_size=vision['patch_size'],
            mlp_ratio=vision.get('mlp_ratio', 4.0),
            output_dim=cfg['embed_dim']), bool(cfg.get('quick_gelu', False))

    def init_weights(self) -> None:
        """Initialise, then load the CLIP weights given as ``pretrained``."""
        called_before = self.is_init
        super().init_weights()
        if called_before:
            return
        if self.pretrained is None:
            print_log(
                'CLIPViT: pretrained=None, so the image encoder keeps its '
                'RANDOM initialisation (no CLIP weights are loaded).',
                logger='current')
            return
        self.load_clip_weights(self.pretrained)

    def load_clip_weights(self, pretrained: str) -> None:
        """Load CLIP image-tower weights, resizing the positional embedding.

        Args:
            pretrained (str): A weight file or an open_clip tag, as the
                ``pretrained`` argument.

        Raises:
            FileNotFoundError: If the weights cannot be found.
            RuntimeError: If they do not fit this architecture; every
                missing, unexpected or mis-shaped key is listed.
        """
        state_dict, source = load_clip_visual_weights(
            pretrained, model_name=self.model_name)
        pos_key = 'positional_embedding'
        if pos_key in state_dict:
            pos = state_dict[pos_key]
            side = math.isqrt(pos.shape[0] - 1)
            if side * side + 1 != pos.shape[0]:
                raise RuntimeError(
                    f'{source}: positional_embedding has {pos.shape[0]} '
                    'tokens, which is not 1 + a square grid.')
            state_dict[pos_key] = resize_pos_embed(pos, (side, side),
                                                   self.patch_grid,
                                                   self.interpolate_mode)
            if (side, side) != self.patch_grid:
                print_log(
                    'CLIPViT: positional embedding resized from '
                    f'{side}x{side} to {self.patch_grid[0]}x'
                    f'{self.patch_grid[1]} '
                    f'({self.interpolate_mode}).',
                    logger='current')
        own = self.state_dict()
        expected = [k for k in own if k != 'cam_embed']
        missing = [k for k in expected if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        mismatched = [
            f'{k}: file {tuple(v.shape)} vs model {tuple(own[k].shape)}'
            for k, v in state_dict.items()
            if k in own and v.shape != own[k].shape
        ]
        if missing or unexpected or mismatched:
            arch = self.model_name or self.arch
            raise RuntimeError(
                f'The CLIP weights in {source} do not fit CLIPViT '
                f'(arch={arch!r}):\n'
                f'  missing keys: {missing}\n'
                f'  unexpected keys: {unexpected}\n'
                f'  shape mismatches: {mismatched}')
        with torch.no_grad():
            for key, value in state_dict.items():
                own[key].copy_(value)
        print_log(
            f'CLIPViT: loaded the CLIP image encoder from {source}.',
            logger='current')

    def forward(
        self,
        x: torch.Tensor,
        cam_ids: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encode images into tokens.

        Args:
            x (Tensor): Normalised images ``[N, 3, H, W]``.
            cam_ids (Tensor, optional): Camera ids ``[N]`` (int64); None
                skips the camera embedding. Defaults to None.

        Returns:
            tuple[Tensor, Tensor]: Every token after ``ln_post``
            ``[N, 1 + h * w, embed_dims]`` (the class token first) and their
            projection ``[N, 1 + h * w, out_dims]``.
        """
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(
                f'CLIPViT expects images [N, 3, H, W], got {tuple(x.shape)}.')
        x = self.conv1(x)
        if tuple(x.shape[2:]) != self.patch_grid:
            raise ValueError(
                f'An input of {tuple(x.shape[2:])} patches does not match '
                f'the {self.patch_grid} grid of img_size={self.img_size}, '
                f'stride_size={self.stride_size}.')
        x = x.flatten(2).transpose(1, 2)
        cls_token = self.class_embedding.to(x.dtype).expand(x.shape[0], 1, -1)
        if cam_ids is not None:
            cls_token = cls_token + self.sie_coef * self._camera_embedding(
                cam_ids, x.shape[0]).to(x.dtype).unsqueeze(1)
        x = torch.cat([cls_token, x], dim=1)
        x = x + self.positional_embedding.to(x.dtype)
        x = self.ln_pre(x)
        for block in self.transformer.resblocks:
            if self.with_cp and x.requires_grad:
                x = cp.checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        x = self.ln_post(x)
        return x, x @ self.proj

    def _camera_embedding(self, cam_ids: torch.Tensor,
                          batch_size: int) -> torch.Tensor:
        """Look up SIE embeddings, checking the ids."""
        if self.num_cams == 0:
            raise ValueError(
                'cam_ids were given but CLIPViT has no camera embedding '
                '(num_cams=0); set num_cams or pass cam_ids=None.')
        if cam_ids.shape != (batch_size, ):
            raise ValueError(
                f'cam_ids must have shape ({batch_size},), one per image, '
                f'got {tuple(cam_ids.shape)}.')
        if cam_ids.dtype.is_floating_point or cam_ids.dtype == torch.bool:
            raise TypeError(f'cam_ids must be integers, got {cam_ids.dtype}.')
        # Their range is checked where they enter, against the data's
        # cameras (ConfigCheckHook, the APIs), not here: reading a device
        # tensor's values would stall every step.
        return self.cam_embed[cam_ids]
