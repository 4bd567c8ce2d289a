# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Sequence

import cv2
import numpy as np
import torch
from mmcv.transforms import BaseTransform
from mmpretrain.structures import DataSample

from mmtfclip.registry import TRANSFORMS
from ._utils import frames_as_array


@TRANSFORMS.register_module()
class PackTrackletInputs(BaseTransform):
    """Pack the frames and labels into ``inputs`` and a data sample.

    ``inputs`` stays uint8 (the data preprocessor converts and normalises on
    the device): ``[T, 3, H, W]`` RGB, or ``[N, T, 3, H, W]`` for the N
    clips of ``'dense'`` sampling (even when N is 1, so that a dense loader
    always gives one shape).

    The data sample is an ``mmpretrain.structures.DataSample`` with
    ``gt_label`` = pid, a data field ``camid`` (0-d int64 tensor) and the
    metainfo ``frame_paths`` (the sampled paths, in input order),
    ``tracklet_id``, ``split`` and the ``meta_keys`` present in
    ``results``.

    Required Keys:

    - imgs
    - pid
    - camid
    - frame_paths
    - frame_inds

    Added Keys:

    - inputs (torch.Tensor)
    - data_samples (DataSample)

    Args:
        meta_keys (Sequence[str]): Keys copied into the metainfo when
            present (``sample_mode``, ``clip_len`` and ``num_clips`` let
            the metric's evaluation line name the frame sampling).
            Defaults to ``('tracklet_id', 'split', 'sample_idx',
            'frame_inds', 'sample_mode', 'clip_len', 'num_clips',
            'img_shape', 'ori_shape', 'flip')``.
    """

    def __init__(
        self,
        meta_keys: Sequence[str] = ('tracklet_id', 'split', 'sample_idx',
                                    'frame_inds', 'sample_mode', 'clip_len',
                                    'num_clips', 'img_shape', 'ori_shape',
                                    'flip')
    ) -> None:
        self.meta_keys = tuple(meta_keys)

    def transform(self, results: dict) -> dict:
        """Pack ``results``.

        Args:
            results (dict): The transformed tracklet.

        Returns:
            dict: ``inputs`` and ``data_samples``.
        """
        imgs = frames_as_array(results, type(self).__name__)
        n, h, w, c = imgs.shape
        if min(imgs.strides) > 0 and c == 3:
            # HWC -> CHW with one cv2.split per frame, straight into the
            # output: about 5x faster than numpy's strided transpose copy.
            chw = np.empty((n, c, h, w), dtype=np.uint8)
            for frame, out in zip(imgs, chw):
                cv2.split(frame, out)
        else:
            chw = np.ascontiguousarray(imgs.transpose(0, 3, 1, 2))
        if results.get('sample_mode') == 'dense':
            t = results['clip_len']
            if n % t:
                raise ValueError(f'{n} frames are not whole clips of {t}')
            chw = chw.reshape((n // t, t, c, h, w))
        inputs = torch.from_numpy(chw)

        sample = DataSample().set_gt_label(int(results['pid']))
        sample.set_field(
            torch.tensor(int(results['camid']), dtype=torch.int64),
            'camid',
            field_type='data')
        paths = results['frame_paths']
        meta = dict(frame_paths=[paths[i] for i in results['frame_inds']])
        for key in self.meta_keys:
            if key in results:
                meta[key] = results[key]
        sample.set_metainfo(meta)
        return dict(inputs=inputs, data_samples=sample)

    def __repr__(self) -> str:
        return f'{self.__class__.__name__}(meta_keys={self.meta_keys})'
