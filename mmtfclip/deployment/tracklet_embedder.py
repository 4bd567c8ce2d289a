# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Optional

import torch
import torch.nn as nn


class TrackletEmbedder(nn.Module):
    """A trained recognizer as one plain function of tensors, for export.

    Frames go in as the data pipeline packs them (uint8 RGB) and come out
    as the model's test embedding: the wrapper converts to float,
    normalises with the data preprocessor's mean and std and runs the
    recognizer's test path (``extract_feat`` and ``head.predict``, what
    ``forward(mode='tensor')`` does for one clip per row). ONNX export and
    the FLOP count use it, since neither can pass data samples.

    Args:
        model (nn.Module): A ``TFCLIP`` in eval mode, e.g. from
            :func:`mmtfclip.apis.init_model`.
        preprocess (bool): Take uint8 frames and normalise them; False
            takes frames already normalised. Defaults to True.
    """

    def __init__(self, model: nn.Module, preprocess: bool = True) -> None:
        super().__init__()
        self.model = model
        self.preprocess = preprocess
        preprocessor = model.data_preprocessor
        # Shaped [1, 1, 3, 1, 1] to broadcast over [N, T, 3, H, W].
        self.register_buffer(
            'mean',
            preprocessor.mean.detach().clone().view(1, 1, 3, 1, 1),
            persistent=False)
        self.register_buffer(
            'std',
            preprocessor.std.detach().clone().view(1, 1, 3, 1, 1),
            persistent=False)

    @property
    def use_camera_ids(self) -> bool:
        """Whether the camera input is used (SIE)."""
        return bool(getattr(self.model, 'use_camera_ids', False))

    def forward(self,
                frames: torch.Tensor,
                cam_ids: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Embed one clip per row.

        Args:
            frames (Tensor): ``[N, T, 3, H, W]`` RGB, uint8 (or normalised
                float with ``preprocess=False``).
            cam_ids (Tensor, optional): ``[N]`` int64 0-based cameras, used
                only when the model has SIE; ignored otherwise. Defaults to
                None.

        Returns:
            Tensor: ``[N, D]`` float32 embeddings (not L2-normalised).
        """
        inputs = frames
        if self.preprocess:
            inputs = (frames.float() - self.mean) / self.std
        cams = cam_ids if self.use_camera_ids else None
        if self.use_camera_ids and cams is None:
            raise ValueError('The model uses camera ids (SIE): pass cam_ids.')
        model = self.model
        return model.head.predict(model.extract_feat(inputs, cams)).float()
