# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Dict, List, Optional, Sequence, Union

import torch
import torch.nn as nn
from mmengine.model import BaseModule

from mmtfclip.registry import MODELS

EMBEDDING_PARTS = ('cls', 'proj', 'temporal')


def _label_smooth_loss(weight: float) -> Dict:
    return dict(
        type='mmpretrain.LabelSmoothLoss',
        label_smooth_val=0.1,
        mode='original',
        loss_weight=weight)


@MODELS.register_module()
class CLIPMemoryHead(BaseModule):
    """TF-CLIP's head: CLIP-Memory with SSP, BNNecks, classifiers, losses.

    It takes the features of a batch of sequences (see :meth:`loss` for
    the keys): the class token after the encoder's final LayerNorm
    (``cls``) and its projection (``proj``), both averaged over frames, the
    projected tokens averaged over frames (``proj_tokens``, for SSP), and
    from the temporal neck the frame features (``frame``) and the sequence
    feature (``temporal``).

    Training losses, with the authors' weights by default:

    - ``loss_id``: label-smoothed cross-entropy (0.1) x 0.25 on the class,
      projected-class and temporal features, each after its BNNeck and
      classifier (the three terms summed; each is logged as ``id_cls``,
      ``id_proj``, ``id_temporal``);
    - ``loss_triplet``: batch-hard triplet loss (margin 0.3) x 1 on the same
      three features before the BNNecks (summed; logged as
      ``triplet_cls``, ...);
    - ``loss_i2t``: label-smoothed cross-entropy x 1 on the memory logits,
      the projected class feature dotted with each identity's memory entry
      after SSP adds the sequence's prompt to it (no temperature);
    - ``loss_frame``: label-smoothed cross-entropy on every frame feature
      (after its BNNeck), each frame labelled with its sequence's identity,
      divided by T. The frame classifier is the temporal classifier unless
      ``share_frame_classifier=False``.

    The memory is the persistent buffer ``clip_memory`` ``[num_classes,
    proj_channels]``, filled before training by ``CLIPMemoryHook`` (or
    loaded with a checkpoint) and never trained.

    Args:
        num_classes (int): Training identities.
        in_channels (int): Channels of the class and temporal features.
            Defaults to 768.
        proj_channels (int): Channels of the projected features and the
            memory. Defaults to 512.
        with_temporal (bool): Whether a temporal neck gives ``frame`` and
            ``temporal`` features. Defaults to True.
        share_frame_classifier (bool): Classify frames with the temporal
            classifier, as the authors do; False gives the frames their
            own classifier. Defaults to True.
        ssp (dict, optional): Config of the Sequence-Specific Prompt; its
            ``embed_dims`` defaults to ``proj_channels``. None uses the
            memory as it is. Defaults to a 2-layer
            ``SequenceSpecificPrompt``.
        loss_id (dict): ID loss config. Defaults to label smoothing 0.1,
            weight 0.25.
        loss_triplet (dict): Triplet loss config. Defaults to margin 0.3,
            weight 1.
        loss_i2t (dict, optional): Memory loss config; None removes the
            memory (no buffer, no SSP, no memory loss). Defaults to label
            smoothing 0.1, weight 1.
        loss_frame (dict, optional): Frame loss config (its result is
            divided by T); None removes the frame branch. Unused without
            a temporal neck. Defaults to label smoothing 0.1, weight 1.
        embedding_parts (Sequence[str]): The features concatenated, in
            order, into the test embedding: any of 'cls', 'proj',
            'temporal'. Defaults to all three (2048-d for ViT-B/16).
        embedding_after_bn (bool): Take the embedding parts after their
            BNNecks. Defaults to False (the authors' MARS setting).
        init_cfg (dict | list[dict], optional): Initialisation config.
            Defaults to None.
    """

    def __init__(self,
                 num_classes: int,
                 in_channels: int = 768,
                 proj_channels: int = 512,
                 with_temporal: bool = True,
                 share_frame_classifier: bool = True,
                 ssp: Optional[Dict] = dict(
                     type='SequenceSpecificPrompt', num_layers=2),
                 loss_id: Dict = _label_smooth_loss(0.25),
                 loss_triplet: Dict = dict(
                     type='TripletLoss', margin=0.3, loss_weight=1.0),
                 loss_i2t: Optional[Dict] = _label_smooth_loss(1.0),
                 loss_frame: Optional[Dict] = _label_smooth_loss(1.0),
                 embedding_parts: Sequence[str] = EMBEDDING_PARTS,
                 embedding_after_bn: bool = False,
                 init_cfg: Optional[Union[Dict, List[Dict]]] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if not isinstance(num_classes, int) or num_classes < 1:
            raise ValueError('model.head.num_classes must be the number of '
                             f'training identities, got {num_classes!r}.')
        self.num_classes = num_classes
        self.in_channels = in_channels
        self.proj_channels = proj_channels
        self.with_temporal = with_temporal
        self.with_memory = loss_i2t is not None
        self.with_frame = with_temporal and loss_frame is not None
        self.share_frame_classifier = share_frame_classifier

        embedding_parts = tuple(embedding_parts)
        unknown = [p for p in embedding_parts if p not in EMBEDDING_PARTS]
        if unknown or not embedding_parts:
            raise ValueError(
                f'embedding_parts must be a non-empty sequence of '
                f'{EMBEDDING_PARTS}, got {embedding_parts}.')
        if 'temporal' in embedding_parts and not with_temporal:
            raise ValueError(
                "embedding_parts includes 'temporal' but the head has no "
                'temporal features (with_temporal=False).')
        self.embedding_parts = embedding_parts
        self.embedding_after_bn = embedding_after_bn

        self.cls_bn = self._bnneck(in_channels)
        self.proj_bn = self._bnneck(proj_channels)
        self.cls_classifier = self._classifier(in_channels)
        self.proj_classifier = self._classifier(proj_channels)
        if with_temporal:
            self.temporal_bn = self._bnneck(in_channels)
            self.temporal_classifier = self._classifier(in_channels)
        if self.with_frame:
            self.frame_bn = self._bnneck(in_channels)
            if not share_frame_classifier:
                self.frame_classifier = self._classifier(in_channels)

        if self.with_memory:
            self.register_buffer('clip_memory',
                                 torch.zeros(num_classes, proj_channels))
            self._memory_checked = False
            if ssp is not None:
                ssp = dict(ssp)
                ssp.setdefault('embed_dims', proj_channels)
                self.ssp = MODELS.build(ssp)
            else:
                self.ssp = None
        elif ssp is not None:
            raise ValueError(
                'ssp is set but loss_i2t=None removes the memory it adapts; '
                'set ssp=None too.')

        self.loss_id = MODELS.build(loss_id)
        self.loss_triplet = MODELS.build(loss_triplet)
        if self.with_memory:
            self.loss_i2t = MODELS.build(loss_i2t)
        if self.with_frame:
            self.loss_frame = MODELS.build(loss_frame)

    @staticmethod
    def _bnneck(channels: int) -> nn.BatchNorm1d:
        # BNNeck (Luo et al., 2019): the shift stays 0, only the scale is
        # learned.
        bn = nn.BatchNorm1d(channels)
        nn.init.ones_(bn.weight)
        nn.init.zeros_(bn.bias)
        bn.bias.requires_grad_(False)
        return bn

    def _classifier(self, channels: int) -> nn.Linear:
        fc = nn.Linear(channels, self.num_classes, bias=False)
        nn.init.normal_(fc.weight, std=0.001)
        return fc

    @property
    def frame_classifier_layer(self) -> nn.Linear:
        """The classifier of the frame features."""
        if self.share_frame_classifier:
            return self.temporal_classifier
        return self.frame_classifier

    def set_memory(self, memory: torch.Tensor) -> None:
        """Replace the CLIP-Memory.

        Args:
            memory (Tensor): ``[num_classes, proj_channels]``.
        """
        if not self.with_memory:
            raise RuntimeError('This head has no CLIP-Memory (loss_i2t=None).')
        if memory.shape != self.clip_memory.shape:
            raise ValueError(
                f'The CLIP-Memory must be {tuple(self.clip_memory.shape)} '
                f'(identities x channels), got {tuple(memory.shape)}.')
        self.clip_memory.copy_(memory.detach())
        self._memory_checked = False

    def memory_logits(self, proj: torch.Tensor,
                      proj_tokens: torch.Tensor) -> torch.Tensor:
        """Score each sequence against every identity's memory entry.

        Args:
            proj (Tensor): Projected class features ``[B, D]``.
            proj_tokens (Tensor): Projected tokens averaged over frames
                ``[B, L, D]``, SSP's keys and values.

        Returns:
            Tensor: ``[B, num_classes]``.
        """
        memory = self.clip_memory.to(proj.dtype)
        if self.ssp is None:
            return proj @ memory.t()
        memory = memory + self.ssp(memory, proj_tokens)
        return torch.einsum('bd,bkd->bk', proj, memory)

    def _check_memory(self) -> None:
        # Once per memory: a zero memory means no one built it, and
        # training would go on silently against a meaningless target.
        if self._memory_checked:
            return
        if not bool(self.clip_memory.any()):
            raise RuntimeError(
                'The CLIP-Memory (head.clip_memory) is empty: add '
                "dict(type='CLIPMemoryHook', ...) to custom_hooks to build "
                'it before training, or load a checkpoint that has one.')
        self._memory_checked = True

    def loss(self, feats: Dict[str, torch.Tensor],
             labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Compute the training losses.

        Args:
            feats (dict): ``cls`` ``[B, C]``, ``proj`` ``[B, D]``,
                ``proj_tokens`` ``[B, L, D]`` (with the memory), and with
                a temporal neck ``frame`` ``[B, T, C]`` and ``temporal``
                ``[B, C]``.
            labels (Tensor): Identities ``[B]``.

        Returns:
            dict: ``loss_id``, ``loss_triplet``, ``loss_i2t`` (with the
            memory), ``loss_frame`` (with the frame branch); for the log,
            the branches' terms of ``loss_id`` and ``loss_triplet``
            (``id_cls``, ``id_proj``, ``id_temporal``, ``triplet_cls``, ...;
            detached) and the top-1 accuracies (%) ``acc_id`` of the class
            classifier and ``acc_i2t`` of the memory logits.
        """
        branches = [('cls', self.cls_bn, self.cls_classifier),
                    ('proj', self.proj_bn, self.proj_classifier)]
        if self.with_temporal:
            branches.append(
                ('temporal', self.temporal_bn, self.temporal_classifier))
        losses = dict()
        terms = dict()
        loss_id, loss_triplet = 0., 0.
        for name, bn, classifier in branches:
            score = classifier(bn(feats[name]))
            term_id = self.loss_id(score, labels)
            term_triplet = self.loss_triplet(feats[name], labels)
            loss_id = loss_id + term_id
            loss_triplet = loss_triplet + term_triplet
            terms[f'id_{name}'] = term_id.detach()
            terms[f'triplet_{name}'] = term_triplet.detach()
            if name == 'cls':
                losses['acc_id'] = self._accuracy(score, labels)
        # The sums are the terms of the total loss, so that it is added up
        # as the authors do; each branch's term is logged next to them
        # (names without "loss", which the total leaves out).
        losses['loss_id'] = loss_id
        losses['loss_triplet'] = loss_triplet
        losses.update(terms)

        if self.with_memory:
            self._check_memory()
            logits = self.memory_logits(feats['proj'], feats['proj_tokens'])
            losses['loss_i2t'] = self.loss_i2t(logits, labels)
            losses['acc_i2t'] = self._accuracy(logits, labels)

        if self.with_frame:
            frame = feats['frame']
            num_frames = frame.shape[1]
            score = self.frame_classifier_layer(
                self.frame_bn(frame.flatten(0, 1)))
            losses['loss_frame'] = self.loss_frame(
                score, labels.repeat_interleave(num_frames)) / num_frames
        return losses

    @staticmethod
    def _accuracy(score: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return (score.argmax(dim=1) == labels).float().mean() * 100

    def predict(self, feats: Dict[str, torch.Tensor]) -> torch.Tensor:
        """The test embedding of each clip.

        Args:
            feats (dict): As for :meth:`loss`; ``proj_tokens`` and
                ``frame`` are not needed.

        Returns:
            Tensor: ``[B, D]``, the ``embedding_parts`` concatenated.
        """
        norms = dict(cls=self.cls_bn, proj=self.proj_bn)
        if self.with_temporal:
            norms['temporal'] = self.temporal_bn
        parts = []
        for name in self.embedding_parts:
            part = feats[name]
            if self.embedding_after_bn:
                part = norms[name](part)
            parts.append(part)
        return torch.cat(parts, dim=1)

    @property
    def embedding_dims(self) -> int:
        """Length of the test embedding."""
        dims = dict(
            cls=self.in_channels,
            proj=self.proj_channels,
            temporal=self.in_channels)
        return sum(dims[p] for p in self.embedding_parts)
