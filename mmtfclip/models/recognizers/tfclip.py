# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Dict, List, Optional, Tuple, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement

from mmtfclip.registry import MODELS

SampleList = List[BaseDataElement]
ForwardResults = Union[Dict[str, torch.Tensor], SampleList, torch.Tensor]


@MODELS.register_module()
class TFCLIP(BaseModel):
    """TF-CLIP (Yu et al., AAAI 2024) for video person re-identification.

    The frames of each clip go through the CLIP image encoder (``backbone``;
    with SIE, each frame gets its sequence's camera), the temporal neck
    (TMD) turns the encoder tokens into frame and sequence features, and the
    head holds the CLIP-Memory with SSP, the BNNecks, the classifiers and
    the losses. See :class:`CLIPMemoryHead` for the losses and the test
    embedding.

    The backbone returns either ``(tokens, projected tokens)`` (``CLIPViT``)
    or only the tokens, e.g. mmpretrain's ``VisionTransformer`` with
    ``out_type='raw'`` (a tuple holding one ``[N, L, C]`` tensor); the
    latter needs ``visual_proj``, CLIP's projection as a bias-free linear
    layer owned by the recognizer (its weight is CLIP's ``proj``
    transposed, see ``tools/model_converters/clip_to_mmpretrain.py``).

    Args:
        backbone (dict): Image encoder config.
        head (dict): Head config.
        neck (dict, optional): Temporal neck config; None leaves the model
            without temporal features (the head needs
            ``with_temporal=False`` then). Defaults to None.
        visual_proj (dict, optional): ``dict(in_features, out_features)``
            for a backbone that gives tokens only. Defaults to None.
        use_camera_ids (bool, optional): Feed the samples' cameras to the
            backbone (SIE). None uses them when the backbone has a camera
            embedding; True requires one. Defaults to None.
        max_test_clips (int, optional): At most this many clips go through
            the encoder at once in ``predict`` / ``tensor`` mode (the dense
            clips of the batch's tracklets, together, are split into
            chunks); None runs all at once. Defaults to None.
        data_preprocessor (dict, optional): Defaults to a
            ``TrackletDataPreprocessor`` with ImageNet's mean and std.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 backbone: Dict,
                 head: Dict,
                 neck: Optional[Dict] = None,
                 visual_proj: Optional[Dict] = None,
                 use_camera_ids: Optional[bool] = None,
                 max_test_clips: Optional[int] = None,
                 data_preprocessor: Optional[Union[Dict, nn.Module]] = None,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        if data_preprocessor is None:
            data_preprocessor = dict(type='TrackletDataPreprocessor')
        if isinstance(data_preprocessor, dict):
            data_preprocessor = MODELS.build(data_preprocessor)
        super().__init__(
            data_preprocessor=data_preprocessor, init_cfg=init_cfg)
        self.backbone = self._build_backbone(backbone)
        backbone_name = type(self.backbone).__name__
        self.num_cams = int(getattr(self.backbone, 'num_cams', 0) or 0)
        if use_camera_ids and not self.num_cams:
            raise ValueError(
                'model.use_camera_ids=True asks for SIE, but the backbone '
                f'{backbone_name} has no camera embedding (SIE needs '
                'CLIPViT with num_cams > 0).')
        self.use_camera_ids = (
            bool(self.num_cams)
            if use_camera_ids is None else bool(use_camera_ids))

        if visual_proj is not None:
            unknown = set(visual_proj) - {'in_features', 'out_features'}
            if unknown:
                raise KeyError(
                    'model.visual_proj takes in_features and out_features '
                    f'(a bias-free linear layer), got {sorted(visual_proj)}.')
            self.visual_proj = nn.Linear(
                visual_proj['in_features'],
                visual_proj['out_features'],
                bias=False)
        else:
            self.visual_proj = None
        if max_test_clips is not None and max_test_clips < 1:
            raise ValueError(
                f'max_test_clips must be >= 1 or None, got {max_test_clips}.')
        self.max_test_clips = max_test_clips

        self.neck = MODELS.build(neck) if neck is not None else None
        self.head = MODELS.build(head)
        self._check_dims()

    @staticmethod
    def _build_backbone(cfg: Dict) -> nn.Module:
        try:
            return MODELS.build(cfg)
        except TypeError as e:
            # A foreign backbone that does not know SIE's arguments fails
            # with a bare "unexpected keyword" error otherwise.
            for key in ('num_cams', 'sie_coef'):
                if f"'{key}'" in str(e):
                    raise TypeError(
                        f'model.backbone.{key} is set but the backbone '
                        f"{cfg.get('type')} has no camera embedding (SIE is "
                        'available with CLIPViT only); remove the key, e.g. '
                        'with _delete_=True when swapping backbones.') from e
            raise

    def _check_dims(self) -> None:
        width = getattr(self.backbone, 'embed_dims', None)
        out_dims = getattr(self.backbone, 'out_dims', None)
        if self.visual_proj is not None:
            out_dims = self.visual_proj.out_features
            if width is not None and self.visual_proj.in_features != width:
                raise ValueError(
                    f'model.visual_proj.in_features='
                    f'{self.visual_proj.in_features} but the backbone width '
                    f'is {width}.')
        mismatches = []
        if width is not None and self.head.in_channels != width:
            mismatches.append(f'model.head.in_channels='
                              f'{self.head.in_channels} vs backbone width '
                              f'{width}')
        if out_dims is not None and self.head.proj_channels != out_dims:
            mismatches.append(f'model.head.proj_channels='
                              f'{self.head.proj_channels} vs projection '
                              f'width {out_dims}')
        if self.neck is not None and width is not None and getattr(
                self.neck, 'embed_dims', width) != width:
            mismatches.append(f'model.neck.embed_dims='
                              f'{self.neck.embed_dims} vs backbone width '
                              f'{width}')
        if self.head.with_temporal and self.neck is None:
            mismatches.append('model.head.with_temporal=True but there is '
                              'no neck (model.neck=None)')
        if not self.head.with_temporal and self.neck is not None:
            mismatches.append('model.head.with_temporal=False leaves the '
                              'neck unused')
        if mismatches:
            raise ValueError('Inconsistent TFCLIP config: ' +
                             '; '.join(mismatches) + '.')

    @property
    def num_frames(self) -> Optional[int]:
        """Frames per clip the neck was configured for (None without)."""
        return getattr(self.neck, 'num_frames', None)

    def _encode(
        self,
        frames: torch.Tensor,
        cam_ids: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """Encoder tokens and projected tokens of ``[N, 3, H, W]`` frames."""
        if cam_ids is not None:
            out = self.backbone(frames, cam_ids)
        else:
            out = self.backbone(frames)
        if self.visual_proj is None:
            if not (isinstance(out, (tuple, list)) and len(out) == 2):
                raise TypeError(
                    f'The backbone {type(self.backbone).__name__} does not '
                    'return (tokens, projected tokens); set model.'
                    'visual_proj=dict(in_features=..., out_features=...) to '
                    'project its tokens.')
            return out[0], out[1]
        if isinstance(out, (tuple, list)):
            if len(out) != 1:
                raise TypeError(
                    'With model.visual_proj the backbone must return one '
                    f'token tensor [N, L, C], got {len(out)} outputs (for '
                    "mmpretrain's ViT: out_type='raw', out_indices=-1).")
            out = out[0]
        if out.dim() != 3:
            raise TypeError(
                'With model.visual_proj the backbone must return tokens '
                f'[N, L, C], got {tuple(out.shape)}.')
        return out, self.visual_proj(out)

    def extract_feat(self,
                     inputs: torch.Tensor,
                     cam_ids: Optional[torch.Tensor] = None,
                     with_tokens: bool = False) -> Dict[str, torch.Tensor]:
        """Features of a batch of clips.

        Args:
            inputs (Tensor): Normalised clips ``[B, T, 3, H, W]``.
            cam_ids (Tensor, optional): Camera of each clip ``[B]``; each
                frame gets its clip's camera. Defaults to None.
            with_tokens (bool): Also return ``proj_tokens``. Defaults to
                False.

        Returns:
            dict: ``cls`` ``[B, C]`` and ``proj`` ``[B, D]`` (the class token
            and its projection, averaged over frames), ``proj_tokens``
            ``[B, L, D]`` (every projected token averaged over frames, if
            asked), and with a neck ``frame`` ``[B, T, C]`` and ``temporal``
            ``[B, C]``.
        """
        if inputs.dim() != 5:
            raise ValueError(
                f'Expected clips [B, T, 3, H, W], got {tuple(inputs.shape)}.')
        batch, frames = inputs.shape[:2]
        frame_cams = None
        if cam_ids is not None:
            frame_cams = cam_ids.repeat_interleave(frames)
        tokens, proj_tokens = self._encode(inputs.flatten(0, 1), frame_cams)
        tokens = tokens.view(batch, frames, *tokens.shape[1:])
        proj_tokens = proj_tokens.view(batch, frames, *proj_tokens.shape[1:])
        feats = dict(
            cls=tokens[:, :, 0].mean(dim=1),
            proj=proj_tokens[:, :, 0].mean(dim=1))
        if with_tokens:
            feats['proj_tokens'] = proj_tokens.mean(dim=1)
        if self.neck is not None:
            feats['frame'], feats['temporal'] = self.neck(tokens)
        return feats

    def extract_clip_feat(self, inputs: torch.Tensor) -> torch.Tensor:
        """The CLIP-Memory feature of clips: the projected class token
        averaged over frames, without camera embedding.

        Args:
            inputs (Tensor): Normalised clips ``[B, T, 3, H, W]``.

        Returns:
            Tensor: ``[B, D]``.
        """
        batch, frames = inputs.shape[:2]
        _, proj_tokens = self._encode(inputs.flatten(0, 1))
        return proj_tokens[:, 0].reshape(batch, frames, -1).mean(dim=1)

    def _camera_ids(self, data_samples: Optional[SampleList],
                    device: torch.device) -> Optional[torch.Tensor]:
        if not self.use_camera_ids:
            return None
        if data_samples is None:
            raise ValueError(
                'The model uses camera ids (SIE) but got no data samples to '
                'read them from.')
        cams = []
        for i, sample in enumerate(data_samples):
            if 'camid' not in sample:
                raise KeyError(
                    f'Data sample {i} has no camid, which SIE needs (the '
                    'packing transform sets it).')
            cams.append(torch.as_tensor(sample.camid).reshape(()))
        return torch.stack(cams).to(device=device, dtype=torch.long)

    @staticmethod
    def _labels(data_samples: SampleList,
                device: torch.device) -> torch.Tensor:
        labels = []
        for i, sample in enumerate(data_samples):
            label = sample.gt_label.reshape(-1)
            if label.numel() != 1:
                raise ValueError(f'Data sample {i} must have one gt_label, '
                                 f'got {label.tolist()}.')
            labels.append(label)
        return torch.cat(labels).to(device=device, dtype=torch.long)

    def loss(self, inputs: torch.Tensor,
             data_samples: SampleList) -> Dict[str, torch.Tensor]:
        """Training losses of a batch of clips ``[B, T, 3, H, W]``.

        Args:
            inputs (Tensor): Normalised clips.
            data_samples (list[DataSample]): With ``gt_label`` and, for
                SIE, ``camid``.

        Returns:
            dict: See :meth:`CLIPMemoryHead.loss`.
        """
        if inputs.dim() != 5:
            raise ValueError(
                'Training takes one clip per sample [B, T, 3, H, W], got '
                f'{tuple(inputs.shape)}.')
        cam_ids = self._camera_ids(data_samples, inputs.device)
        feats = self.extract_feat(
            inputs, cam_ids, with_tokens=self.head.with_memory)
        return self.head.loss(feats, self._labels(data_samples, inputs.device))

    @staticmethod
    def _clip_counts(inputs: torch.Tensor,
                     data_samples: Optional[SampleList]) -> List[int]:
        """The number of clips of each tracklet in a test batch."""
        if inputs.dim() == 6:
            return [inputs.shape[1]] * inputs.shape[0]
        if inputs.dim() != 5:
            raise ValueError('Expected clips [B, T, 3, H, W], dense clips '
                             '[B, N, T, 3, H, W] or the concatenated dense '
                             'clips of several tracklets [sum N, T, 3, H, W]'
                             f', got {tuple(inputs.shape)}.')
        clips = inputs.shape[0]
        if data_samples is None:
            return [1] * clips
        recorded = [sample.get('num_clips') for sample in data_samples]
        if all(n is None for n in recorded):
            counts = [1] * len(data_samples)
        elif any(n is None for n in recorded):
            raise KeyError('Some data samples of the batch have num_clips '
                           f'and some do not: {recorded}.')
        else:
            counts = [int(n) for n in recorded]
        if sum(counts) != clips:
            raise ValueError(
                f'The data samples give {counts} clips per tracklet '
                f'({sum(counts)} in all) but the inputs hold {clips} clips.')
        return counts

    def _embed(self, inputs: torch.Tensor,
               data_samples: Optional[SampleList]) -> torch.Tensor:
        """Test embeddings, each tracklet's dense clips averaged.

        The clips of all tracklets go through the encoder together, in
        chunks of ``max_test_clips``: in eval mode no layer mixes samples,
        so a batch of tracklets gives the embeddings of one at a time.
        """
        counts = self._clip_counts(inputs, data_samples)
        if data_samples is not None and len(data_samples) != len(counts):
            raise ValueError(f'Got {len(data_samples)} data samples for '
                             f'{len(counts)} tracklets.')
        cam_ids = self._camera_ids(data_samples, inputs.device)
        if inputs.dim() == 6:
            inputs = inputs.flatten(0, 1)
        if cam_ids is not None:
            # SIE: each clip gets its tracklet's camera.
            cam_ids = cam_ids.repeat_interleave(
                torch.tensor(counts, device=cam_ids.device))
        chunk = self.max_test_clips or inputs.shape[0]
        embeddings = []
        for start in range(0, inputs.shape[0], chunk):
            cams = None if cam_ids is None else cam_ids[start:start + chunk]
            feats = self.extract_feat(inputs[start:start + chunk], cams)
            embeddings.append(self.head.predict(feats))
        embeddings = torch.cat(embeddings).float()
        return torch.stack(
            [clips.mean(dim=0) for clips in embeddings.split(counts)])

    def predict(self, inputs: torch.Tensor,
                data_samples: SampleList) -> SampleList:
        """Embed each tracklet; the result is set as ``pred_feature``.

        Args:
            inputs (Tensor): ``[B, T, 3, H, W]``, ``[B, N, T, 3, H, W]``
                (N dense clips, averaged) or ``[sum N, T, 3, H, W]`` (the
                dense clips of tracklets with different N, concatenated by
                the data preprocessor).
            data_samples (list[DataSample]): One per tracklet; with
                concatenated clips each has the metainfo ``num_clips``.

        Returns:
            list[DataSample]: The samples, each with ``pred_feature``
            (float32, ``[D]``).
        """
        embeddings = self._embed(inputs, data_samples)
        for sample, embedding in zip(data_samples, embeddings):
            sample.set_field(embedding, 'pred_feature')
        return data_samples

    def forward(self,
                inputs: torch.Tensor,
                data_samples: Optional[SampleList] = None,
                mode: str = 'tensor') -> ForwardResults:
        """Dispatch to :meth:`loss`, :meth:`predict` or the raw embedding.

        Args:
            inputs (Tensor): Preprocessed clips (see the modes).
            data_samples (list[DataSample], optional): Per-sample labels and
                cameras. Defaults to None.
            mode (str): 'loss', 'predict' or 'tensor' (the test embeddings
                ``[B, D]``, one per tracklet, as in 'predict'). Defaults to
                'tensor'.

        Returns:
            dict | list | Tensor: Losses, samples or embeddings.
        """
        if mode == 'loss':
            return self.loss(inputs, data_samples)
        if mode == 'predict':
            return self.predict(inputs, data_samples)
        if mode == 'tensor':
            return self._embed(inputs, data_samples)
        raise RuntimeError(f'Invalid mode "{mode}": use "loss", "predict" '
                           'or "tensor".')
