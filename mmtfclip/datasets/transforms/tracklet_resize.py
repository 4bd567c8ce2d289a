# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Tuple

import mmcv
import numpy as np
from mmcv.transforms import BaseTransform

from mmtfclip.registry import TRANSFORMS


@TRANSFORMS.register_module()
class TrackletResize(BaseTransform):
    """Resize every frame of a tracklet to one size.

    Frames already of that size are left as they are (MARS crops are
    256x128), so the usual case costs nothing. The aspect ratio is not kept:
    person crops are stretched to the model's input, as the TF-CLIP
    authors do.

    Required Keys:

    - imgs (array ``[N, H, W, 3]`` or list of ``[H, W, 3]``)

    Modified Keys:

    - imgs (array ``[N, h, w, 3]``)
    - img_shape

    Args:
        scale (tuple[int, int]): Target size as (w, h), like mmcv's
            ``Resize``; ``(128, 256)`` gives 256-high, 128-wide frames.
        interpolation (str): mmcv interpolation name. Defaults to
            ``'bilinear'``.
    """

    def __init__(self,
                 scale: Tuple[int, int],
                 interpolation: str = 'bilinear') -> None:
        if len(scale) != 2 or min(scale) < 1:
            raise ValueError(f'scale must be (w, h) with positive sizes, got '
                             f'{scale!r}')
        self.scale = (int(scale[0]), int(scale[1]))
        self.interpolation = interpolation

    def transform(self, results: dict) -> dict:
        """Resize ``imgs``.

        Args:
            results (dict): With ``imgs``.

        Returns:
            dict: ``results`` with the resized frames.
        """
        w, h = self.scale
        imgs = results['imgs']
        if isinstance(imgs, np.ndarray) and imgs.shape[1:3] == (h, w):
            results['img_shape'] = (h, w)
            return results
        out = np.empty((len(imgs), h, w, 3), dtype=np.uint8)
        for k, frame in enumerate(imgs):
            out[k] = frame if frame.shape[:2] == (h, w) else mmcv.imresize(
                frame, (w, h), interpolation=self.interpolation)
        results['imgs'] = out
        results['img_shape'] = (h, w)
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(scale={self.scale}, '
                f'interpolation={self.interpolation!r})')
