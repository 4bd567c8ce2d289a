# Copyright (c) mmtfclip contributors. All rights reserved.
import inspect
from contextlib import nullcontext
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
from mmengine.dist import all_reduce, get_dist_info
from mmengine.model import BaseModel
from mmengine.structures import BaseDataElement
from mmengine.utils import ProgressBar

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

    The backbone returns ``(tokens, projected tokens)`` for images
    ``[N, 3, H, W]`` and says its widths as ``embed_dims`` and ``out_dims``:
    ``CLIPViT`` does, and ``ProjectedBackbone`` gives any token encoder
    (e.g. mmpretrain's ``VisionTransformer``) CLIP's projection.

    Tracklets are embedded by one method, :meth:`embed_tracklets`, which
    testing, :meth:`prepare_memory` (the CLIP-Memory), the inference APIs
    and the tools call.

    Args:
        backbone (dict): Image encoder config.
        head (dict): Head config.
        neck (dict, optional): Temporal neck config; None leaves the model
            without temporal features (the head needs
            ``with_temporal=False`` then). Defaults to None.
        use_camera_ids (bool, optional): Feed the samples' cameras to the
            backbone (SIE). None uses them when the backbone has a camera
            embedding; True requires one. Defaults to None.
        max_test_clips (int, optional): At most this many clips go through
            the encoder at once in :meth:`embed_tracklets` (the dense clips
            of a batch's tracklets, together, are split into chunks); None
            runs all at once. Defaults to None.
        data_preprocessor (dict, optional): Defaults to a
            ``TrackletDataPreprocessor`` with ImageNet's mean and std.
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 backbone: Dict,
                 head: Dict,
                 neck: Optional[Dict] = None,
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
        if max_test_clips is not None and max_test_clips < 1:
            raise ValueError(
                f'max_test_clips must be >= 1 or None, got {max_test_clips}.')
        self.max_test_clips = max_test_clips

        self.neck = MODELS.build(neck) if neck is not None else None
        self.head = MODELS.build(head)
        self._check_dims()

    @staticmethod
    def _build_backbone(cfg: Dict) -> nn.Module:
        # A backbone without a camera embedding would fail with a bare
        # "unexpected keyword" error on SIE's arguments: say why instead.
        backbone_cls = MODELS.get(cfg['type']) if isinstance(
            cfg.get('type'), str) else cfg.get('type')
        if backbone_cls is not None:
            params = inspect.signature(backbone_cls).parameters
            takes_any = any(p.kind == p.VAR_KEYWORD for p in params.values())
            for key in ('num_cams', 'sie_coef'):
                if key in cfg and key not in params and not takes_any:
                    raise TypeError(
                        f'model.backbone.{key} is set but the backbone '
                        f"{cfg.get('type')} has no camera embedding (SIE is "
                        'available with CLIPViT only); remove the key, e.g. '
                        'with _delete_=True when swapping backbones.')
        return MODELS.build(cfg)

    def _check_dims(self) -> None:
        name = type(self.backbone).__name__
        width = getattr(self.backbone, 'embed_dims', None)
        out_dims = getattr(self.backbone, 'out_dims', None)
        if width is None or out_dims is None:
            raise TypeError(
                f'The backbone {name} does not say its token and projection '
                'widths (embed_dims, out_dims): a TF-CLIP backbone returns '
                '(tokens, projected tokens), as CLIPViT does; wrap an '
                "encoder that gives tokens only in dict(type='"
                "ProjectedBackbone', encoder=..., in_channels=...,"
                ' out_channels=...).')
        mismatches = []
        if self.head.in_channels != width:
            mismatches.append(f'model.head.in_channels='
                              f'{self.head.in_channels} vs backbone width '
                              f'{width}')
        if self.head.proj_channels != out_dims:
            mismatches.append(f'model.head.proj_channels='
                              f'{self.head.proj_channels} vs projection '
                              f'width {out_dims}')
        if self.neck is not None and getattr(self.neck, 'embed_dims',
                                             width) != width:
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
            return self.backbone(frames, cam_ids)
        return self.backbone(frames)

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

    def embed_tracklets(self,
                        inputs: torch.Tensor,
                        num_clips: Optional[Sequence[int]] = None,
                        cam_ids: Optional[torch.Tensor] = None,
                        feature: str = 'embedding',
                        max_clips: Optional[int] = None) -> torch.Tensor:
        """Embed tracklets given as their (dense) clips.

        Each clip is embedded on its own and each tracklet's embedding is
        the mean over its clips. The clips of all tracklets go through the
        encoder together, in chunks of ``max_clips``: in eval mode no layer
        mixes samples, so a batch of tracklets gives the embeddings of one
        at a time.

        Args:
            inputs (Tensor): Normalised clips: ``[sum N, T, 3, H, W]`` (the
                clips of the tracklets one after the other), or
                ``[B, N, T, 3, H, W]`` (N clips each).
            num_clips (Sequence[int], optional): The number of clips of each
                tracklet, in order. None: N each for 6-d inputs, one each
                for 5-d ones. Defaults to None.
            cam_ids (Tensor, optional): Camera of each tracklet ``[B]``;
                every clip (and frame) gets its tracklet's camera (SIE).
                Defaults to None.
            feature (str): ``'embedding'``, the head's test embedding, or
                ``'memory'``, the CLIP-Memory feature (the projected class
                token without camera, :meth:`extract_clip_feat`).
                Defaults to 'embedding'.
            max_clips (int, optional): Clips per encoder forward; None uses
                ``max_test_clips``. Defaults to None.

        Returns:
            Tensor: ``[B, D]`` float32, one row per tracklet.
        """
        if inputs.dim() == 6:
            if num_clips is None:
                num_clips = [inputs.shape[1]] * inputs.shape[0]
            inputs = inputs.flatten(0, 1)
        elif num_clips is None:
            num_clips = [1] * inputs.shape[0]
        num_clips = list(num_clips)
        if feature == 'memory':
            if cam_ids is not None:
                raise ValueError('The CLIP-Memory feature takes no cameras '
                                 '(cam_ids must be None).')
        elif feature != 'embedding':
            raise ValueError("feature must be 'embedding' or 'memory', got "
                             f'{feature!r}.')
        if cam_ids is not None:
            # SIE: each clip gets its tracklet's camera.
            cam_ids = cam_ids.repeat_interleave(
                torch.tensor(num_clips, device=cam_ids.device))
        chunk = max_clips or self.max_test_clips or inputs.shape[0]
        embeddings = []
        for start in range(0, inputs.shape[0], chunk):
            clips = inputs[start:start + chunk]
            if feature == 'memory':
                embeddings.append(self.extract_clip_feat(clips))
                continue
            cams = None if cam_ids is None else cam_ids[start:start + chunk]
            embeddings.append(
                self.head.predict(self.extract_feat(clips, cams)))
        embeddings = torch.cat(embeddings).float()
        return torch.stack(
            [clips.mean(dim=0) for clips in embeddings.split(num_clips)])

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
        """Test embeddings of a test batch, as :meth:`embed_tracklets`."""
        counts = self._clip_counts(inputs, data_samples)
        if data_samples is not None and len(data_samples) != len(counts):
            raise ValueError(f'Got {len(data_samples)} data samples for '
                             f'{len(counts)} tracklets.')
        cam_ids = self._camera_ids(data_samples, inputs.device)
        return self.embed_tracklets(inputs, counts, cam_ids)

    @torch.no_grad()
    def prepare_memory(self,
                       dataloader: Iterable[dict],
                       autocast: bool = True,
                       max_clips: Optional[int] = None) -> torch.Tensor:
        """Build the CLIP-Memory from the training tracklets.

        As the authors define it: every tracklet of ``dataloader`` (packed
        dense clips ``[N, T, 3, H, W]`` with ``gt_label``) is embedded with
        the encoder as it is (:meth:`embed_tracklets` with
        ``feature='memory'``: the projected class token averaged over
        frames, without the camera embedding, then over clips), and each
        identity's entry is the mean over its tracklets. The result is set
        as ``head.clip_memory`` and returned.

        In a distributed run each rank embeds the tracklets its loader
        gives it (a sampler that splits the set without repeating a
        tracklet, e.g. ``DefaultSampler(round_up=False)``) and the
        per-identity sums are all-reduced, so every rank gets the same
        memory. Rank 0 shows a progress bar.

        Args:
            dataloader (Iterable[dict]): Batches of packed samples
                (``pseudo_collate``), with ``dataset`` when it is a
                ``DataLoader`` (its length is checked against the number of
                tracklets embedded by all ranks).
            autocast (bool): Run the encoder under float16 autocast on
                CUDA, as the authors. Defaults to True.
            max_clips (int, optional): Clips per encoder forward; None uses
                ``max_test_clips``. Defaults to None.

        Returns:
            Tensor: The memory ``[num_classes, D]``, float32 on the CPU.
        """
        num_classes = self.head.num_classes
        sums = torch.zeros(
            num_classes, self.head.proj_channels, dtype=torch.float64)
        counts = torch.zeros(num_classes, dtype=torch.float64)
        device = self.data_preprocessor.device
        amp = (
            torch.autocast(device_type='cuda', dtype=torch.float16)
            if autocast and device.type == 'cuda' else nullcontext())
        dataset = getattr(dataloader, 'dataset', None)
        rank, _ = get_dist_info()
        bar = ProgressBar(len(dataset)) if (rank == 0
                                            and dataset is not None) else None
        was_training = self.training
        self.eval()
        try:
            for batch in dataloader:
                data = self.data_preprocessor(batch, False)
                labels = self._labels(data['data_samples'],
                                      torch.device('cpu'))
                if labels.min() < 0 or labels.max() >= num_classes:
                    raise ValueError(
                        f'Training labels must lie in [0, {num_classes}) '
                        '(model.head.num_classes), got '
                        f'{int(labels.min())}..{int(labels.max())}.')
                with amp:
                    feats = self.embed_tracklets(
                        data['inputs'],
                        self._clip_counts(data['inputs'],
                                          data['data_samples']),
                        feature='memory',
                        max_clips=max_clips)
                sums.index_add_(0, labels, feats.double().cpu())
                counts.index_add_(0, labels,
                                  torch.ones(len(labels), dtype=torch.float64))
                if bar is not None:
                    bar.update(len(labels))
        finally:
            self.train(was_training)
        all_reduce(sums)
        all_reduce(counts)
        if dataset is not None and int(counts.sum()) != len(dataset):
            raise ValueError(
                f'The data loader gave {int(counts.sum())} tracklets over all '
                f'ranks for a set of {len(dataset)}: its sampler repeats or '
                'drops some (use DefaultSampler with round_up=False).')
        missing = torch.nonzero(counts == 0).flatten().tolist()
        if missing:
            raise ValueError(
                f'{len(missing)} of the {num_classes} identities have no '
                f'training tracklet, so no CLIP-Memory entry: {missing[:20]}'
                f"{' ...' if len(missing) > 20 else ''}. Check "
                'model.head.num_classes against the training set.')
        memory = (sums / counts.unsqueeze(1)).float()
        self.head.set_memory(memory.to(self.head.clip_memory.device))
        return memory

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
