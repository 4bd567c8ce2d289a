# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Dict, List, Optional

import torch
import torch.nn as nn
from mmengine.logging import print_log
from mmengine.model.weight_init import update_init_info

from mmtfclip.fileio import DIGEST_KEY, check_finite, load_file
from mmtfclip.registry import WEIGHT_INITIALIZERS


@WEIGHT_INITIALIZERS.register_module(name='Pretrained')
class StrictPretrainedInit:
    """``init_cfg=dict(type='Pretrained', ...)``, read safely and strictly.

    In the ``mmtfclip`` scope this takes the place of mmengine's
    ``PretrainedInit`` (same name, same arguments, so a config's
    ``init_cfg`` reads as in any OpenMMLab project and mmengine still
    applies it after the children's own initialisation). mmengine's loads
    the file with the Runner's checkpoint loader and ``strict=False``: a
    file with the wrong keys leaves the model at its random initialisation
    with a warning in the log, and the run trains on. Here:

    - the file is read with :func:`mmtfclip.fileio.load_file` (tensors and
      plain containers only, nothing in it runs);
    - every key must be one of the module's, and every top-level part the
      file has weights for (e.g. ``backbone``) must be
      complete; shapes must fit (the module's own load hooks, such as
      mmpretrain's positional-embedding resize, still apply);
    - NaN or infinite weights are refused.

    Parts the file has no weights for at all (e.g. the neck and head under
    a converted CLIP file) keep their initialisation, and the log says so.

    Args:
        checkpoint (str): The weight file (``torch.save``; a state dict or
            ``{'state_dict': ...}``, ``module.`` prefixes are dropped).
        prefix (str, optional): Only the keys starting with this prefix are
            used, without it (as mmengine's ``prefix``). Defaults to None.
        map_location (str): As for :func:`torch.load`. Defaults to 'cpu'.
    """

    def __init__(self,
                 checkpoint: str,
                 prefix: Optional[str] = None,
                 map_location: str = 'cpu'):
        self.checkpoint = checkpoint
        self.prefix = prefix
        self.map_location = map_location

    def _read(self) -> Dict[str, torch.Tensor]:
        what = 'pretrained checkpoint (init_cfg)'
        obj = load_file(
            self.checkpoint, map_location=self.map_location, what=what)
        if isinstance(obj, dict) and isinstance(obj.get('state_dict'), dict):
            obj = obj['state_dict']
        if not isinstance(obj, dict):
            raise RuntimeError(f'The {what} {self.checkpoint} holds a '
                               f'{type(obj).__name__}, not a state dict.')
        state_dict = {
            (k[len('module.'):] if k.startswith('module.') else k): v
            for k, v in obj.items() if k != DIGEST_KEY
        }
        if self.prefix:
            state_dict = {
                k[len(self.prefix):]: v
                for k, v in state_dict.items() if k.startswith(self.prefix)
            }
            if not state_dict:
                raise RuntimeError(
                    f'The {what} {self.checkpoint} has no key starting with '
                    f'prefix={self.prefix!r}.')
        others = [
            k for k, v in state_dict.items()
            if not isinstance(v, torch.Tensor)
        ]
        if others:
            raise RuntimeError(f'The {what} {self.checkpoint} holds values '
                               f'that are not tensors: {others[:8]}')
        check_finite(state_dict, self.checkpoint, what=what)
        return state_dict

    def __call__(self, module: nn.Module) -> None:
        state_dict = self._read()
        own = module.state_dict()
        parts = sorted({k.split('.')[0] for k in state_dict})
        unexpected = [k for k in state_dict if k not in own]
        missing = [
            k for k in own if k not in state_dict and k.split('.')[0] in parts
        ]
        if unexpected or missing or not state_dict:
            raise RuntimeError(
                f'The pretrained checkpoint {self.checkpoint} (init_cfg '
                f'Pretrained) does not fit {type(module).__name__}: training '
                'from random weights instead would give a meaningless '
                'model, so the run stops.\n'
                f'  keys the model does not have ({len(unexpected)}): '
                f'{_head(unexpected)}\n'
                f'  keys missing from the file ({len(missing)}): '
                f'{_head(missing)}\n'
                'Convert the CLIP weights for this backbone first (e.g. '
                'tools/model_converters/clip_to_mmpretrain.py).')
        try:
            module.load_state_dict(state_dict, strict=False)
        except RuntimeError as e:
            raise RuntimeError(
                f'The pretrained checkpoint {self.checkpoint} (init_cfg '
                f'Pretrained) does not fit {type(module).__name__}: '
                f'{e}') from e
        untouched = sorted({k.split('.')[0] for k in own} - set(parts))
        print_log(
            f'Pretrained: loaded {", ".join(parts)} of '
            f'{type(module).__name__} from {self.checkpoint}' +
            (f'; {", ".join(untouched)} keep their initialisation'
             if untouched else '') + '.',
            logger='current')
        if hasattr(module, '_params_init_info'):
            update_init_info(
                module,
                init_info=f'{type(self).__name__}: load from '
                f'{self.checkpoint}')


def _head(keys: List[str], n: int = 8) -> str:
    return str(keys[:n])[:-1] + (', ...]' if len(keys) > n else ']')
