# Copyright (c) mmtfclip contributors. All rights reserved.
import math
from typing import Optional, Sequence, Tuple

import numpy as np
from mmcv.transforms import BaseTransform

from mmtfclip.registry import TRANSFORMS
from ._utils import frames_as_array


@TRANSFORMS.register_module()
class TrackletRandomErasing(BaseTransform):
    """Erase a random rectangle of each frame independently.

    As the TF-CLIP authors use it (Zhong et al.'s random erasing, their
    ``RandomSizedEarser`` in ``utils/seqtransforms.py``): each frame, with
    probability ``erase_prob``, gets one box of ``min_area_ratio`` to
    ``max_area_ratio`` of its area, with height / width drawn uniformly from
    ``aspect_range``, filled with one random colour. ``placement`` says
    where the box goes:

    - ``'size_offset'`` (default, the authors'): a box of ``floor(w_e) x
      floor(h_e)`` pixels for the drawn real size ``w_e x h_e`` (redrawn
      until it fits the frame) whose top-left corner is at ``(box width,
      box height)``, clipped by the frame. Their code draws a corner too
      but pastes the fill with ``frame.paste(fill, box.size)``, which PIL
      reads as the upper-left corner; the region erased is thus fixed by
      the box size, always right of and below the frame's top-left box of
      the same size, and partly or wholly outside the frame for large
      boxes.
    - ``'sampled'``: the box (rounded sizes) at a corner drawn uniformly
      over the positions where it fits, Zhong et al.'s placement.

    Required Keys:

    - imgs

    Modified Keys:

    - imgs

    Added Keys:

    - erased_boxes (list[tuple]): ``(frame, x1, y1, x2, y2)`` of each
      region actually filled, ``x2``/``y2`` exclusive (a ``'size_offset'``
      box entirely outside the frame fills nothing and is not listed).

    Args:
        erase_prob (float): Probability of erasing each frame.
            Defaults to 0.5.
        min_area_ratio (float): Smallest box area over frame area.
            Defaults to 0.02.
        max_area_ratio (float): Largest box area over frame area.
            Defaults to 0.2.
        aspect_range (tuple[float, float]): Range of the box's height over
            width. Defaults to (0.3, 1 / 0.3).
        fill_color (tuple[int, int, int], optional): A fixed RGB fill; None
            draws a random colour for each box. Defaults to None.
        max_attempts (int): Draws before giving up on a frame whose box
            does not fit. Defaults to 100.
        placement (str): ``'size_offset'`` or ``'sampled'``, see above.
            Defaults to ``'size_offset'``.
    """

    PLACEMENTS = ('size_offset', 'sampled')

    def __init__(self,
                 erase_prob: float = 0.5,
                 min_area_ratio: float = 0.02,
                 max_area_ratio: float = 0.2,
                 aspect_range: Tuple[float, float] = (0.3, 1 / 0.3),
                 fill_color: Optional[Sequence[int]] = None,
                 max_attempts: int = 100,
                 placement: str = 'size_offset') -> None:
        if placement not in self.PLACEMENTS:
            raise ValueError(f'placement must be one of {self.PLACEMENTS}, '
                             f'got {placement!r}')
        if not 0 <= erase_prob <= 1:
            raise ValueError(f'erase_prob must be in [0, 1], got {erase_prob}')
        if not 0 < min_area_ratio <= max_area_ratio < 1:
            raise ValueError('need 0 < min_area_ratio <= max_area_ratio < 1, '
                             f'got {min_area_ratio}, {max_area_ratio}')
        if not 0 < aspect_range[0] <= aspect_range[1]:
            raise ValueError(f'bad aspect_range {aspect_range!r}')
        self.erase_prob = erase_prob
        self.min_area_ratio = min_area_ratio
        self.max_area_ratio = max_area_ratio
        self.aspect_range = tuple(aspect_range)
        self.fill_color = None if fill_color is None else np.asarray(
            fill_color, dtype=np.uint8)
        self.max_attempts = max_attempts
        self.placement = placement

    def _box(self, h: int, w: int) -> Optional[Tuple[int, int, int, int]]:
        area = h * w
        for _ in range(self.max_attempts):
            target = np.random.uniform(self.min_area_ratio,
                                       self.max_area_ratio) * area
            ratio = np.random.uniform(*self.aspect_range)
            real_h, real_w = math.sqrt(target * ratio), math.sqrt(target /
                                                                  ratio)
            if self.placement == 'size_offset':
                if real_h < h and real_w < w:
                    bh, bw = int(real_h), int(real_w)
                    # Clipped by the frame; possibly empty.
                    return bw, bh, min(2 * bw, w), min(2 * bh, h)
                continue
            bh, bw = int(round(real_h)), int(round(real_w))
            if 0 < bh < h and 0 < bw < w:
                y1 = np.random.randint(h - bh + 1)
                x1 = np.random.randint(w - bw + 1)
                return x1, y1, x1 + bw, y1 + bh
        return None

    def transform(self, results: dict) -> dict:
        """Erase boxes in ``imgs``.

        Args:
            results (dict): With ``imgs``.

        Returns:
            dict: ``results`` with the erased frames.
        """
        imgs = frames_as_array(results, type(self).__name__)
        n, h, w = imgs.shape[:3]
        boxes = []
        for k in np.flatnonzero(np.random.rand(n) < self.erase_prob):
            box = self._box(h, w)
            if box is None:
                continue
            x1, y1, x2, y2 = box
            if x1 >= x2 or y1 >= y2:
                continue
            colour = self.fill_color if self.fill_color is not None else \
                np.random.randint(0, 256, size=imgs.shape[3], dtype=np.uint8)
            imgs[k, y1:y2, x1:x2] = colour
            boxes.append((int(k), x1, y1, x2, y2))
        results['erased_boxes'] = boxes
        return results

    def __repr__(self) -> str:
        fill = None if self.fill_color is None else self.fill_color.tolist()
        return (f'{self.__class__.__name__}(erase_prob={self.erase_prob}, '
                f'min_area_ratio={self.min_area_ratio}, '
                f'max_area_ratio={self.max_area_ratio}, '
                f'aspect_range={self.aspect_range}, fill_color={fill}, '
                f'placement={self.placement!r})')
