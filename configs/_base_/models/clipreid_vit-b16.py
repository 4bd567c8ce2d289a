# CLIP-ReID (Li et al., AAAI 2023) with OpenAI's CLIP ViT-B/16, both towers
# from the same weight file. The authors' configs/person/vit_clipreid.yml
# over config/defaults.py. Dataset configs set model.backbone.num_cams (SIE)
# and model.head.num_classes.
clip_weights = 'openai'  # ~/.cache/clip/ViT-B-16.pt or the HF cache; a path
model = dict(
    type='CLIPReID',
    max_test_clips=64,
    data_preprocessor=dict(
        type='TrackletDataPreprocessor',
        # Their INPUT.PIXEL_MEAN / PIXEL_STD: 0.5 / 0.5 (RGB, 0-255 here).
        mean=[127.5, 127.5, 127.5],
        std=[127.5, 127.5, 127.5]),
    backbone=dict(
        type='CLIPViT',
        arch='ViT-B-16',
        img_size=(256, 128),  # (h, w): 16 x 8 patches + the class token
        stride_size=16,  # their STRIDE_SIZE; 12 is their "OLP" variant
        num_cams=0,  # SIE off, as vit_clipreid.yml (SIE_CAMERA False)
        sie_coef=3.0,  # their SIE_COE default; the README's SIE runs use 1
        interpolate_mode='bilinear',
        force_quick_gelu=True,
        pretrained=clip_weights),
    text_encoder=dict(
        type='CLIPTextEncoder', arch='ViT-B-16', pretrained=clip_weights),
    prompt_learner=dict(
        type='IdentityPromptLearner',
        template='A photo of a X X X X person.',
        num_tokens=4),
    loss_prompt=dict(type='SupConLoss', temperature=1.0),
    text_batch_size=64,
    head=dict(
        type='CLIPReIDHead',
        num_classes=None,  # the training identities, set by dataset configs
        in_channels=768,
        proj_channels=512,
        penultimate_triplet=True,
        loss_id=dict(
            type='mmpretrain.LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original',
            loss_weight=0.25),
        loss_triplet=dict(type='TripletLoss', margin=0.3, loss_weight=1.0),
        loss_i2t=dict(
            type='mmpretrain.LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original',
            loss_weight=1.0),
        # [class 768, projected class 512] before the BNNecks (their
        # TEST.NECK_FEAT 'before'); the metric L2-normalises (FEAT_NORM).
        embedding_parts=('cls', 'proj'),
        embedding_after_bn=False))
