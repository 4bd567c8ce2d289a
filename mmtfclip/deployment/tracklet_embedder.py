# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Optional

import torch
import torch.nn as nn


class TrackletEmbedder(nn.Module):
    """A trained recognizer as one plain function of tensors, for export.

    Frames go in as the data pipeline packs them (uint8 RGB) and come out
    as the model's test embedding: the wrapper normalises with the data
    preprocessor and runs the recognizer's test path for one clip per row
    (``extract_feat`` and ``head.predict``, what ``embed_tracklets`` does
    for tracklets of one clip). ONNX export and the FLOP count use it,
    since neither can pass data samples.

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
        model = self.model
        inputs = frames
        if self.preprocess:
            inputs = model.data_preprocessor.normalize(frames)
        cams = cam_ids if self.use_camera_ids else None
        if self.use_camera_ids and cams is None:
            raise ValueError('The model uses camera ids (SIE): pass cam_ids.')
        # One clip per row, without embed_tracklets' chunking and averaging,
        # whose Python loops would fix the batch size of an exported graph.
        return model.head.predict(model.extract_feat(inputs, cams)).float()
