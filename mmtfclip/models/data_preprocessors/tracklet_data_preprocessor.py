# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Optional, Sequence, Union

import torch
from mmengine.model import BaseDataPreprocessor

from mmtfclip.registry import MODELS

# ImageNet's mean and std in the 0-255 range: the authors' data loader
# normalises with them (not with CLIP's).
IMAGENET_MEAN = (123.675, 116.28, 103.53)
IMAGENET_STD = (58.395, 57.12, 57.375)

_DTYPES = {
    'bf16': torch.bfloat16,
    'bfloat16': torch.bfloat16,
    'fp16': torch.float16,
    'float16': torch.float16,
}


@MODELS.register_module()
class TrackletDataPreprocessor(BaseDataPreprocessor):
    """Stack, move and normalise batches of tracklet clips.

    Like mmaction2's ``ActionDataPreprocessor``: the packed uint8 RGB
    frames of each sample, ``[T, 3, H, W]`` (or ``[N, T, 3, H, W]`` for N
    dense clips), are moved to the model's device, stacked into
    ``[B, T, 3, H, W]`` (``[B, N, T, 3, H, W]``), converted to float and
    normalised per channel.

    A batch of dense clips with different numbers of clips per tracklet
    (a test batch of several tracklets) cannot be stacked: their clips are
    concatenated into ``[sum N, T, 3, H, W]`` and each data sample gets the
    metainfo ``num_clips`` (its N), which the recognizer uses to average
    each tracklet's own clips.

    Args:
        mean (Sequence[float]): Per-channel mean, RGB, in the 0-255 range.
            Defaults to ImageNet's.
        std (Sequence[float]): Per-channel std, RGB, in the 0-255 range.
            Defaults to ImageNet's.
        dtype (str, optional): Cast the normalised inputs to 'bf16' or
            'fp16' (for a model run in that precision); None keeps float32.
            Defaults to None.
        non_blocking (bool): Whether the copy to the device is
            asynchronous. Defaults to False.
    """

    def __init__(self,
                 mean: Sequence[float] = IMAGENET_MEAN,
                 std: Sequence[float] = IMAGENET_STD,
                 dtype: Optional[str] = None,
                 non_blocking: bool = False) -> None:
        super().__init__(non_blocking=non_blocking)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError('mean and std need one value per RGB channel, '
                             f'got mean={mean}, std={std}.')
        if dtype is not None and dtype not in _DTYPES:
            raise ValueError(f'dtype must be None or one of {list(_DTYPES)}, '
                             f'got {dtype!r}.')
        self.dtype = None if dtype is None else _DTYPES[dtype]
        self.register_buffer(
            'mean',
            torch.tensor(mean, dtype=torch.float32).view(3, 1, 1),
            persistent=False)
        self.register_buffer(
            'std',
            torch.tensor(std, dtype=torch.float32).view(3, 1, 1),
            persistent=False)

    @staticmethod
    def _stack(inputs: Union[torch.Tensor, Sequence[torch.Tensor]],
               data_samples: Optional[list]) -> torch.Tensor:
        if isinstance(inputs, torch.Tensor):
            return inputs
        shapes = [tuple(x.shape) for x in inputs]
        if len(set(shapes)) == 1:
            return torch.stack(list(inputs))
        # Dense test clips: tracklets give different numbers of clips N.
        # Their clips are concatenated and each sample records its N.
        clip_shapes = {shape[1:] for shape in shapes}
        if len(clip_shapes) > 1 or any(len(s) != 5 for s in shapes):
            raise ValueError(
                'The samples of a batch have different shapes and cannot be '
                f'stacked: {shapes}. Only dense clips [N, T, 3, H, W] may '
                'differ, in N.')
        if data_samples is None or len(data_samples) != len(shapes):
            raise ValueError(
                f'A batch of dense clips with different clip counts '
                f'{[s[0] for s in shapes]} needs one data sample per '
                'tracklet to record its num_clips.')
        for sample, shape in zip(data_samples, shapes):
            sample.set_metainfo(dict(num_clips=shape[0]))
        return torch.cat(list(inputs))

    def forward(self, data: dict, training: bool = False) -> dict:
        """Preprocess one batch.

        Args:
            data (dict): ``inputs`` (a list of uint8 tensors, or a stacked
                tensor) and optionally ``data_samples`` (required for dense
                clips of different N).
            training (bool): Unused; the same steps run in training and
                testing. Defaults to False.

        Returns:
            dict: ``inputs`` ``[B, T, 3, H, W]``, ``[B, N, T, 3, H, W]``
            or, for dense clips of different N, ``[sum N, T, 3, H, W]``
            (float32, or ``dtype``) and ``data_samples`` (with
            ``num_clips`` set in the last case).
        """
        data = self.cast_data(data)
        inputs = self._stack(data['inputs'], data.get('data_samples'))
        if inputs.dim() not in (5, 6) or inputs.shape[-3] != 3:
            raise ValueError(
                'TrackletDataPreprocessor expects RGB clips [B, T, 3, H, W] '
                f'or [B, N, T, 3, H, W], got {tuple(inputs.shape)}.')
        return dict(
            inputs=self.normalize(inputs),
            data_samples=data.get('data_samples'))

    def normalize(self, inputs: torch.Tensor) -> torch.Tensor:
        """Convert RGB frames ``[..., 3, H, W]`` (uint8 or float, 0-255) to
        normalised float, cast to ``dtype`` if set.

        Args:
            inputs (Tensor): The frames; not modified.

        Returns:
            Tensor: ``(inputs - mean) / std``.
        """
        # One float copy, normalised in place: the same numbers as
        # `(x - mean) / std` with a third less work on a CPU.
        inputs = inputs.to(torch.float32, copy=True)
        inputs.sub_(self.mean).div_(self.std)
        if self.dtype is not None:
            inputs = inputs.to(self.dtype)
        return inputs
