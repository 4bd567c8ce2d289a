# TF-CLIP (Yu et al., AAAI 2024) with OpenAI's CLIP ViT-B/16 image encoder.
# Dataset configs set model.backbone.num_cams (SIE) and model.head.num_classes.
model = dict(
    type='TFCLIP',
    # A test batch holds the dense clips of several tracklets, as many as
    # their frames / T: the encoder takes them in chunks of at most this
    # many clips so that GPU memory stays bounded. The embeddings do not
    # depend on it.
    max_test_clips=64,
    data_preprocessor=dict(
        type='TrackletDataPreprocessor',
        # ImageNet's mean / std (RGB, 0-255), as the authors' data loader.
        mean=[123.675, 116.28, 103.53],
        std=[58.395, 57.12, 57.375]),
    backbone=dict(
        type='CLIPViT',
        arch='ViT-B-16',
        img_size=(256, 128),  # (h, w): 16 x 8 patches + the class token
        stride_size=16,
        num_cams=0,  # no SIE unless a dataset config sets its cameras
        sie_coef=1.0,
        interpolate_mode='bilinear',  # resize of the 14 x 14 pos-embed
        force_quick_gelu=True,
        # OpenAI's ViT-B-16.pt, looked up in ~/.cache/clip and the Hugging
        # Face cache (never downloaded); or set a file path here.
        pretrained='openai'),
    neck=dict(
        type='TemporalMemoryDiffusion',
        embed_dims=768,
        num_layers=1,
        num_heads=12,
        num_frames=8,  # T, equal to the clip_len of the pipelines
        detach_input=True),
    head=dict(
        type='CLIPMemoryHead',
        num_classes=None,  # the training identities, set by dataset configs
        in_channels=768,
        proj_channels=512,
        with_temporal=True,
        share_frame_classifier=True,
        ssp=dict(type='SequenceSpecificPrompt', num_layers=2, num_heads=8),
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
        # Divided by T in the head, as the authors.
        loss_frame=dict(
            type='mmpretrain.LabelSmoothLoss',
            label_smooth_val=0.1,
            mode='original',
            loss_weight=1.0),
        # Test embedding: [class 768, projected class 512, temporal 768]
        # before the BNNecks (the authors' TEST.NECK_FEAT='before').
        embedding_parts=('cls', 'proj', 'temporal'),
        embedding_after_bn=False))
