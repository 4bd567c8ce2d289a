# Copyright (c) mmtfclip contributors. All rights reserved.
import logging
from typing import Dict, List, Optional

import torch.nn as nn
from mmengine.device import get_device
from mmengine.logging import print_log
from mmengine.optim import AmpOptimWrapper, OptimWrapper

from mmtfclip.registry import (OPTIM_WRAPPER_CONSTRUCTORS, OPTIM_WRAPPERS,
                               OPTIMIZERS)

# The devices mmengine's AmpOptimWrapper accepts.
_AMP_DEVICES = ('cuda', 'npu', 'mlu', 'musa')


@OPTIM_WRAPPER_CONSTRUCTORS.register_module()
class TFCLIPOptimWrapperConstructor:
    """Parameter groups by parameter name, as the TF-CLIP authors' optimizer.

    Their ``make_optimizer_2stage`` (``solver/make_optimizer_prompt.py``)
    gives each trainable parameter its own group and decides its lr and
    weight decay from the parameter's *name* alone:

    1. every parameter starts at the optimizer's ``lr`` and
       ``weight_decay``;
    2. a parameter whose name contains ``'bias'`` gets
       ``lr * bias_lr_mult`` and ``weight_decay * bias_decay_mult``. This is
       a substring test, so LayerNorm and BatchNorm biases and attention
       ``in_proj_bias`` tensors count as biases (mmengine's
       ``DefaultOptimWrapperConstructor`` skips normalisation layers and
       ``in_proj_bias``);
    3. then, for each ``custom_keys`` entry whose key is a substring of the
       name, the lr and the weight decay of step 2 are multiplied by its
       ``lr_mult`` and ``decay_mult`` (several matching keys multiply).

    Parameters with ``requires_grad=False`` are left out of the optimizer,
    as theirs.

    The wrapper is built as configured, with one exception: an
    ``AmpOptimWrapper`` on a machine without an accelerator that mmengine's
    mixed precision supports becomes a plain fp32 ``OptimWrapper`` (its
    ``dtype`` and ``loss_scale`` dropped) with one logged line, so the fp16
    reproduction configs also run the CPU tests and the demo.

    Args:
        optim_wrapper_cfg (dict): The ``optim_wrapper`` of the config:
            ``type`` (``'OptimWrapper'`` or ``'AmpOptimWrapper'``),
            ``optimizer`` and the wrapper's own arguments.
        paramwise_cfg (dict, optional): ``bias_lr_mult`` (float, defaults to
            1.0), ``bias_decay_mult`` (float, defaults to 1.0) and
            ``custom_keys`` (dict of name substring to ``dict(lr_mult=...,
            decay_mult=...)``, each defaulting to 1.0). Defaults to None.
    """

    _PARAMWISE_KEYS = ('bias_lr_mult', 'bias_decay_mult', 'custom_keys')

    def __init__(self,
                 optim_wrapper_cfg: dict,
                 paramwise_cfg: Optional[dict] = None) -> None:
        if 'optimizer' not in optim_wrapper_cfg:
            raise KeyError('optim_wrapper needs an `optimizer`.')
        paramwise_cfg = dict(paramwise_cfg or {})
        unknown = sorted(set(paramwise_cfg) - set(self._PARAMWISE_KEYS))
        if unknown:
            raise KeyError(
                f'optim_wrapper.paramwise_cfg: {unknown} are not options of '
                f'TFCLIPOptimWrapperConstructor ({list(self._PARAMWISE_KEYS)})'
            )
        custom_keys = paramwise_cfg.get('custom_keys', {})
        for key, mults in custom_keys.items():
            bad = sorted(set(mults) - {'lr_mult', 'decay_mult'})
            if bad:
                raise KeyError(f'optim_wrapper.paramwise_cfg.custom_keys.'
                               f'{key}: unknown options {bad}')
        self.optim_wrapper_cfg = dict(optim_wrapper_cfg)
        self.optimizer_cfg = dict(self.optim_wrapper_cfg.pop('optimizer'))
        self.bias_lr_mult = float(paramwise_cfg.get('bias_lr_mult', 1.0))
        self.bias_decay_mult = float(paramwise_cfg.get('bias_decay_mult', 1.0))
        self.custom_keys = {
            key: (float(m.get('lr_mult',
                              1.0)), float(m.get('decay_mult', 1.0)))
            for key, m in custom_keys.items()
        }

    def param_groups(self, model: nn.Module) -> List[Dict]:
        """One group per trainable parameter, with its lr and weight decay.

        Args:
            model (nn.Module): The model (without a DDP wrapper).

        Returns:
            list[dict]: ``params`` (a one-element list), ``lr`` and
            ``weight_decay`` of each trainable parameter, in
            ``named_parameters`` order.
        """
        base_lr = self.optimizer_cfg['lr']
        base_decay = self.optimizer_cfg.get('weight_decay', 0.0)
        groups = []
        for name, param in model.named_parameters():
            if not param.requires_grad:
                continue
            lr, decay = base_lr, base_decay
            if 'bias' in name:
                lr *= self.bias_lr_mult
                decay *= self.bias_decay_mult
            for key, (lr_mult, decay_mult) in self.custom_keys.items():
                if key in name:
                    lr *= lr_mult
                    decay *= decay_mult
            groups.append(dict(params=[param], lr=lr, weight_decay=decay))
        return groups

    def __call__(self, model: nn.Module) -> OptimWrapper:
        """Build the optimizer wrapper of ``model``.

        Args:
            model (nn.Module): The model, possibly wrapped by DDP.

        Returns:
            OptimWrapper: As configured, or the fp32 fallback (see above).
        """
        if hasattr(model, 'module'):
            model = model.module
        wrapper_cfg = dict(self.optim_wrapper_cfg)
        wrapper_cfg.setdefault('type', 'OptimWrapper')
        wrapper_type = wrapper_cfg['type']
        is_amp = wrapper_type == 'AmpOptimWrapper' or (isinstance(
            wrapper_type, type) and issubclass(wrapper_type, AmpOptimWrapper))
        if is_amp and get_device() not in _AMP_DEVICES:
            dtype = wrapper_cfg.pop('dtype', None)
            wrapper_cfg.pop('loss_scale', None)
            wrapper_cfg['type'] = 'OptimWrapper'
            print_log(
                f'optim_wrapper: AmpOptimWrapper (dtype={dtype}) needs a GPU; '
                'this machine has none, so training runs in fp32 with '
                'OptimWrapper.',
                logger='current',
                level=logging.WARNING)
        optimizer_cfg = dict(self.optimizer_cfg)
        optimizer_cfg['params'] = self.param_groups(model)
        optimizer = OPTIMIZERS.build(optimizer_cfg)
        return OPTIM_WRAPPERS.build(
            wrapper_cfg, default_args=dict(optimizer=optimizer))
