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
    def _stack(
            inputs: Union[torch.Tensor,
                          Sequence[torch.Tensor]]) -> torch.Tensor:
        if isinstance(inputs, torch.Tensor):
            return inputs
        shapes = [tuple(x.shape) for x in inputs]
        if len(set(shapes)) > 1:
            raise ValueError(
                'The samples of a batch have different shapes and cannot be '
                f'stacked: {shapes}. With dense sampling tracklets give '
                'different numbers of clips: use batch_size=1 there.')
        return torch.stack(list(inputs))

    def forward(self, data: dict, training: bool = False) -> dict:
        """Preprocess one batch.

        Args:
            data (dict): ``inputs`` (a list of uint8 tensors, or a stacked
                tensor) and optionally ``data_samples``.
            training (bool): Unused; the same steps run in training and
                testing. Defaults to False.

        Returns:
            dict: ``inputs`` ``[B, T, 3, H, W]`` or ``[B, N, T, 3, H, W]``
            (float32, or ``dtype``) and ``data_samples``.
        """
        data = self.cast_data(data)
        inputs = self._stack(data['inputs'])
        if inputs.dim() not in (5, 6) or inputs.shape[-3] != 3:
            raise ValueError(
                'TrackletDataPreprocessor expects RGB clips [B, T, 3, H, W] '
                f'or [B, N, T, 3, H, W], got {tuple(inputs.shape)}.')
        # One float copy, normalised in place: the same numbers as
        # `(x - mean) / std` with a third less work on a CPU.
        inputs = inputs.to(torch.float32, copy=True)
        inputs.sub_(self.mean).div_(self.std)
        if self.dtype is not None:
            inputs = inputs.to(self.dtype)
        return dict(inputs=inputs, data_samples=data.get('data_samples'))
