# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Sequence, Tuple, Union

import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmtfclip.registry import TRANSFORMS
from ._utils import frames_as_array


@TRANSFORMS.register_module()
class TrackletRandomCrop(BaseTransform):
    """Pad, then crop the same random window from every frame.

    The classic ReID jitter (pad 10, crop back to the input size) done
    without materialising the padded frames: the crop window is drawn in
    padded coordinates and only its overlap with the frames is copied; the
    rest is ``pad_val``. All frames share the window, so the sequence stays
    consistent.

    Required Keys:

    - imgs

    Modified Keys:

    - imgs
    - img_shape

    Added Keys:

    - crop_bbox (np.ndarray): ``[x1, y1, x2, y2]`` of the window in
      the padded frame.

    Args:
        crop_size (int | tuple[int, int]): Output size as (h, w), like
            mmpretrain's ``RandomCrop``.
        padding (int | tuple[int, int], optional): Pixels added on each
            side: one value, or (vertical, horizontal). Defaults to None.
        pad_val (int | tuple[int, int, int]): Fill of the padding (RGB).
            Defaults to 0.
    """

    def __init__(self,
                 crop_size: Union[int, Sequence[int]],
                 padding: Union[int, Sequence[int], None] = None,
                 pad_val: Union[int, Sequence[int]] = 0) -> None:
        if isinstance(crop_size, int):
            crop_size = (crop_size, crop_size)
        if len(crop_size) != 2 or min(crop_size) < 1:
            raise ValueError(f'crop_size must be (h, w), got {crop_size!r}')
        if padding is None:
            padding = (0, 0)
        elif isinstance(padding, int):
            padding = (padding, padding)
        if len(padding) != 2 or min(padding) < 0:
            raise ValueError('padding must be an int or (vertical, '
                             f'horizontal) >= 0, got {padding!r}')
        self.crop_size = (int(crop_size[0]), int(crop_size[1]))
        self.padding = (int(padding[0]), int(padding[1]))
        self.pad_val = pad_val

    @cache_randomness
    def _offset(self, height: int, width: int) -> Tuple[int, int]:
        ch, cw = self.crop_size
        return (np.random.randint(height - ch + 1),
                np.random.randint(width - cw + 1))

    def transform(self, results: dict) -> dict:
        """Crop ``imgs``.

        Args:
            results (dict): With ``imgs``.

        Returns:
            dict: ``results`` with the cropped frames.
        """
        imgs = frames_as_array(results, type(self).__name__)
        n, h, w, c = imgs.shape
        pv, ph = self.padding
        ch, cw = self.crop_size
        if ch > h + 2 * pv or cw > w + 2 * ph:
            raise ValueError(
                f'{type(self).__name__}: crop {self.crop_size} (h, w) is '
                f'larger than the padded frame ({h + 2 * pv}, '
                f'{w + 2 * ph}); resize first.')
        y0, x0 = self._offset(h + 2 * pv, w + 2 * ph)
        # The window in frame coordinates, then its overlap with the frame.
        top, left = y0 - pv, x0 - ph
        sy0, sy1 = max(top, 0), min(top + ch, h)
        sx0, sx1 = max(left, 0), min(left + cw, w)
        if (sy0, sy1, sx0, sx1) == (top, top + ch, left, left + cw):
            out = imgs[:, sy0:sy1, sx0:sx1]
        else:
            out = np.empty((n, ch, cw, c), dtype=imgs.dtype)
            out[...] = np.asarray(self.pad_val, dtype=imgs.dtype)
            out[:, sy0 - top:sy1 - top, sx0 - left:sx1 - left] = \
                imgs[:, sy0:sy1, sx0:sx1]
        results['imgs'] = out
        results['img_shape'] = (ch, cw)
        results['crop_bbox'] = np.array([x0, y0, x0 + cw, y0 + ch])
        return results

    def __repr__(self) -> str:
        return (f'{self.__class__.__name__}(crop_size={self.crop_size}, '
                f'padding={self.padding}, pad_val={self.pad_val})')
