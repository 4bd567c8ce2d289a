# TF-CLIP on MARS with mmpretrain's VisionTransformer as the image encoder:
# the registry swap of the backbone. ProjectedBackbone adds CLIP's projection
# to the ViT's tokens, so the recognizer gets (tokens, projected tokens) as
# from CLIPViT. The CLIP weights come converted by
#   python tools/model_converters/clip_to_mmpretrain.py \
#       ~/.cache/clip/ViT-B-16.pt checkpoints/clip/vit-b16_mmpretrain.pth
# (backbone.encoder.* and the projection as backbone.proj.weight).
# mmpretrain's ViT has no camera embedding, so this model runs without SIE.
# In the mmtfclip scope `Pretrained` reads the file as data only and stops
# the run when its keys do not fit (mmengine's own would train on from
# random weights).
_base_ = ['./tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

model = dict(
    backbone=dict(
        _delete_=True,
        type='ProjectedBackbone',
        encoder=dict(
            type='mmpretrain.VisionTransformer',
            # _scope_ resolves QuickGELU in mmpretrain's registry.
            _scope_='mmpretrain',
            arch='base',
            img_size=(256, 128),  # (h, w)
            patch_size=16,
            patch_cfg=dict(padding=0),  # CLIP does not pad
            pre_norm=True,  # CLIP's ln_pre
            final_norm=True,  # CLIP's ln_post, on every token
            norm_cfg=dict(type='LN', eps=1e-5),
            layer_cfgs=dict(act_cfg=dict(type='QuickGELU')),
            interpolate_mode='bilinear',
            out_type='raw'),
        in_channels=768,
        out_channels=512),
    init_cfg=dict(
        type='Pretrained',
        checkpoint='checkpoints/clip/vit-b16_mmpretrain.pth'))
