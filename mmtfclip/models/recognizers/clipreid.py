# Copyright (c) mmtfclip contributors. All rights reserved.
from typing import Dict, List

import torch

from mmtfclip.registry import MODELS
from .tfclip import TFCLIP, SampleList


@MODELS.register_module()
class CLIPReID(TFCLIP):
    """CLIP-ReID (Li et al., AAAI 2023) for image and video person ReID.

    The image side is TF-CLIP's recognizer (the CLIP ViT with SIE, an
    optional temporal neck, the head with BNNecks, classifiers and losses);
    CLIP-ReID adds CLIP's text encoder (frozen) and a prompt learner with
    identity-specific tokens. Training has two stages in one run:

    1. ``PromptLearningHook`` (before the training loop): both encoders
       frozen, every training sample's image feature
       (:meth:`extract_clip_feat`) computed once, only the prompt tokens
       learned with :meth:`prompt_loss`; then :meth:`build_text_memory`
       puts every identity's text feature into ``head.clip_memory``.
    2. The training loop: the image encoder fine-tuned with the head's
       losses against those fixed text features (:class:`CLIPReIDHead`).

    A video clip goes through the same model, its frames' features averaged
    (the frames of a clip share the clip's camera).

    Args:
        backbone (dict): Image encoder config (``CLIPViT``).
        head (dict): Head config (``CLIPReIDHead``).
        text_encoder (dict): ``CLIPTextEncoder`` config; its weights should
            be the same CLIP file as the backbone's.
        prompt_learner (dict): ``IdentityPromptLearner`` config;
            ``num_classes``, ``embed_dims`` and ``context_length`` default
            to the head's and the text encoder's.
        loss_prompt (dict): The stage-1 loss. Defaults to ``SupConLoss``
            (temperature 1).
        text_batch_size (int): Identities per text-encoder forward in
            :meth:`build_text_memory`. Defaults to 64.
        **kwargs: The other arguments of :class:`TFCLIP` (``neck``,
            ``use_camera_ids``, ``max_test_clips``, ``data_preprocessor``,
            ``init_cfg``).
    """

    def __init__(self,
                 backbone: Dict,
                 head: Dict,
                 text_encoder: Dict,
                 prompt_learner: Dict = dict(type='IdentityPromptLearner'),
                 loss_prompt: Dict = dict(type='SupConLoss'),
                 text_batch_size: int = 64,
                 **kwargs) -> None:
        super().__init__(backbone=backbone, head=head, **kwargs)
        self.text_encoder = MODELS.build(text_encoder)
        prompt_learner = dict(prompt_learner)
        prompt_learner.setdefault('num_classes', self.head.num_classes)
        prompt_learner.setdefault('embed_dims', self.text_encoder.width)
        prompt_learner.setdefault('context_length',
                                  self.text_encoder.context_length)
        self.prompt_learner = MODELS.build(prompt_learner)
        # Stage 2 never changes the prompts; PromptLearningHook unfreezes
        # them for stage 1 only (and DDP then leaves them out).
        self.prompt_learner.requires_grad_(False)
        self.loss_prompt = MODELS.build(loss_prompt)
        self.text_batch_size = text_batch_size
        mismatches = []
        if self.prompt_learner.num_classes != self.head.num_classes:
            mismatches.append(
                f'model.prompt_learner.num_classes='
                f'{self.prompt_learner.num_classes} vs model.head.'
                f'num_classes={self.head.num_classes}')
        if self.text_encoder.out_dims != self.head.proj_channels:
            mismatches.append(
                f'text encoder output_dim {self.text_encoder.out_dims} vs '
                f'model.head.proj_channels={self.head.proj_channels}')
        if getattr(self.head, 'penultimate_triplet', False) and not hasattr(
                getattr(self.backbone, 'transformer', None), 'resblocks'):
            mismatches.append(
                'model.head.penultimate_triplet=True needs a CLIPViT '
                'backbone (it reads the class token before the last block)')
        if mismatches:
            raise ValueError('Inconsistent CLIPReID config: ' +
                             '; '.join(mismatches) + '.')

    def text_features(self, labels: torch.Tensor) -> torch.Tensor:
        """The text features of the given identities' prompts.

        Args:
            labels (Tensor): Identities ``[B]``.

        Returns:
            Tensor: ``[B, D]``.
        """
        prompts = self.prompt_learner(labels,
                                      self.text_encoder.token_embedding)
        return self.text_encoder(prompts,
                                 self.prompt_learner.tokenized_prompts)

    def prompt_loss(self, image_feats: torch.Tensor,
                    labels: torch.Tensor) -> Dict[str, torch.Tensor]:
        """Stage 1: the image-to-text and text-to-image contrastive losses.

        Args:
            image_feats (Tensor): The samples' image features ``[B, D]``
                (:meth:`extract_clip_feat`, computed once, no gradient).
            labels (Tensor): Their identities ``[B]``.

        Returns:
            dict: ``loss_i2t_prompt`` and ``loss_t2i_prompt``.
        """
        text = self.text_features(labels)
        image_feats = image_feats.to(text.dtype)
        return dict(
            loss_i2t_prompt=self.loss_prompt(image_feats, text, labels,
                                             labels),
            loss_t2i_prompt=self.loss_prompt(text, image_feats, labels,
                                             labels))

    @torch.no_grad()
    def build_text_memory(self) -> torch.Tensor:
        """Put every identity's text feature into ``head.clip_memory``.

        Returns:
            Tensor: The features ``[num_classes, D]`` (float32).
        """
        labels = torch.arange(
            self.head.num_classes, device=self.prompt_learner.cls_ctx.device)
        feats = torch.cat([
            self.text_features(chunk).float()
            for chunk in labels.split(self.text_batch_size)
        ])
        self.head.set_memory(feats)
        return feats

    def loss(self, inputs: torch.Tensor,
             data_samples: SampleList) -> Dict[str, torch.Tensor]:
        """Stage-2 losses of a batch of clips ``[B, T, 3, H, W]``.

        Args:
            inputs (Tensor): Normalised clips (T = 1 for images).
            data_samples (list[DataSample]): With ``gt_label`` and, for
                SIE, ``camid``.

        Returns:
            dict: See :meth:`CLIPReIDHead.loss`.
        """
        if inputs.dim() != 5:
            raise ValueError(
                'Training takes one clip per sample [B, T, 3, H, W], got '
                f'{tuple(inputs.shape)}.')
        cam_ids = self._camera_ids(data_samples, inputs.device)
        captured: List[torch.Tensor] = []
        handle = None
        if getattr(self.head, 'penultimate_triplet', False):
            # The backbone returns its last layer only; the authors' triplet
            # also takes the class token that enters the last block.
            handle = self.backbone.transformer.resblocks[
                -2].register_forward_hook(
                    lambda module, args, out: captured.append(out[:, 0]))
        try:
            feats = self.extract_feat(
                inputs, cam_ids, with_tokens=self.head.with_memory)
        finally:
            if handle is not None:
                handle.remove()
        if captured:
            batch, frames = inputs.shape[:2]
            feats['penultimate'] = captured[0].view(batch, frames,
                                                    -1).mean(dim=1)
        return self.head.loss(feats, self._labels(data_samples, inputs.device))
