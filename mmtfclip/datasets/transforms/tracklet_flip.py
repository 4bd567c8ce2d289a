# Copyright (c) mmtfclip contributors. All rights reserved.
import cv2
import numpy as np
from mmcv.transforms import BaseTransform
from mmcv.transforms.utils import cache_randomness

from mmtfclip.registry import TRANSFORMS
from ._utils import frames_as_array


@TRANSFORMS.register_module()
class TrackletFlip(BaseTransform):
    """Flip all frames of a tracklet horizontally, or none.

    One decision per tracklet keeps the sequence consistent: a person does
    not change direction between frames. Contiguous frames are flipped in
    place.

    Required Keys:

    - imgs

    Modified Keys:

    - imgs

    Added Keys:

    - flip (bool)
    - flip_direction (str, when flipped)

    Args:
        prob (float): Probability of flipping. Defaults to 0.5.
    """

    def __init__(self, prob: float = 0.5) -> None:
        if not 0 <= prob <= 1:
            raise ValueError(f'prob must be in [0, 1], got {prob}')
        self.prob = prob

    @cache_randomness
    def _do_flip(self) -> bool:
        return np.random.rand() < self.prob

    def transform(self, results: dict) -> dict:
        """Flip ``imgs`` along the width.

        Args:
            results (dict): With ``imgs``.

        Returns:
            dict: ``results`` with the (maybe) flipped frames.
        """
        imgs = frames_as_array(results, type(self).__name__)
        flip = self._do_flip()
        if flip:
            if imgs.flags.c_contiguous and imgs.flags.writeable:
                # In place, frame by frame: several times faster than a
                # numpy copy of the reversed view, and the result stays
                # contiguous for the later transforms.
                for frame in imgs:
                    cv2.flip(frame, 1, dst=frame)
            else:
                results['imgs'] = np.ascontiguousarray(imgs[:, :, ::-1])
            results['flip_direction'] = 'horizontal'
        results['flip'] = bool(flip)
        return results

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(prob={self.prob})'
