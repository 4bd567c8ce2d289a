# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Dict, Optional, Sequence

import torch

from mmtfclip.registry import MODELS
from .clip_memory_head import CLIPMemoryHead


@MODELS.register_module()
class CLIPReIDHead(CLIPMemoryHead):
    """CLIP-ReID's stage-2 head (Li et al., AAAI 2023).

    TF-CLIP's head is built on CLIP-ReID's, so this is
    :class:`CLIPMemoryHead` whose memory holds the text features of every
    identity (the learned prompts of stage 1 through the frozen text
    encoder, set by :meth:`CLIPReID.build_text_memory`) instead of the
    averaged image features, without SSP and, by default, without a
    temporal branch. With the authors' weights:

    - ``loss_id``: label-smoothed cross-entropy x 0.25 on the class and the
      projected-class features after their BNNecks (summed);
    - ``loss_triplet``: batch-hard triplet (margin 0.3) on the class token
      before the encoder's last block (``penultimate``, with
      ``penultimate_triplet``), the class feature and the projected class
      feature (summed);
    - ``loss_i2t``: label-smoothed cross-entropy on the projected class
      feature dotted with every identity's text feature.

    The test embedding is ``[class, projected class]`` before the BNNecks
    (their ``TEST.NECK_FEAT='before'``), 1280-d for ViT-B/16.

    Args:
        num_classes (int): Training identities.
        penultimate_triplet (bool): Add the triplet loss on the class token
            before the last encoder block, as the authors. Defaults to True.
        with_temporal (bool): A temporal neck (TF-CLIP's TMD) gives
            ``frame`` and ``temporal`` features. Defaults to False.
        ssp (dict, optional): Defaults to None (no SSP).
        loss_frame (dict, optional): Frame loss with a temporal neck.
            Defaults to None.
        embedding_parts (Sequence[str]): Defaults to ('cls', 'proj').
        **kwargs: The other arguments of :class:`CLIPMemoryHead`.
    """

    def __init__(self,
                 num_classes: int,
                 penultimate_triplet: bool = True,
                 with_temporal: bool = False,
                 ssp: Optional[Dict] = None,
                 loss_frame: Optional[Dict] = None,
                 embedding_parts: Sequence[str] = ('cls', 'proj'),
                 **kwargs) -> None:
        super().__init__(
            num_classes,
            with_temporal=with_temporal,
            ssp=ssp,
            loss_frame=loss_frame,
            embedding_parts=embedding_parts,
            **kwargs)
        if not self.with_memory:
            raise ValueError('CLIPReIDHead needs loss_i2t: the text features '
                             'are what CLIP-ReID learns against.')
        self.penultimate_triplet = penultimate_triplet

    def _check_memory(self) -> None:
        if self._memory_checked:
            return
        if not bool(self.clip_memory.any()):
            raise RuntimeError(
                'The text features (head.clip_memory) are empty: add '
                "dict(type='PromptLearningHook', ...) to custom_hooks to run "
                'stage 1 before training, or load a checkpoint that has '
                'them.')
        self._memory_checked = True

    def loss(self, feats: Dict[str, torch.Tensor],
             labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """The stage-2 losses.

        Args:
            feats (dict): As for :meth:`CLIPMemoryHead.loss`, plus
                ``penultimate`` ``[B, C]`` with ``penultimate_triplet``.
            labels (Tensor): Identities ``[B]``.

        Returns:
            dict: ``loss_id``, ``loss_triplet``, ``loss_i2t`` (and
            ``loss_frame`` with a temporal neck), ``acc_id``, ``acc_i2t``.
        """
        losses = super().loss(feats, labels)
        if self.penultimate_triplet:
            losses['loss_triplet'] = losses['loss_triplet'] + \
                self.loss_triplet(feats['penultimate'], labels)
        return losses
