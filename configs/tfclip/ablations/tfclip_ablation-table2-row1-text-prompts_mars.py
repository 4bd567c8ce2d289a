# TF-CLIP ablation, main paper Table 2 row 1 (supplement Table 4, B1): the
# CLIP-Memory replaced by CLIP-ReID's learned text prompts (identity tokens
# in "A photo of a X X X X person.", learned in a first stage with both
# encoders frozen, PromptLearningHook), no SSP, no TMD: the model of row 2
# with text features in place of the memory. TF-CLIP's losses stay as in the
# other rows (ID and triplet on the class and projected class features, the
# memory loss against the text features); the authors released no config
# for this row, so this is our reading of it.
_base_ = ['../tfclip_vit-b16-clip-openai-pre_1xb16-t8-80e_mars.py']

_clip = {{_base_.model.backbone.pretrained}}
model = dict(
    type='CLIPReID',
    neck=None,
    text_encoder=dict(
        type='CLIPTextEncoder', arch='ViT-B-16', pretrained=_clip),
    prompt_learner=dict(type='IdentityPromptLearner'),
    head=dict(
        type='CLIPReIDHead',
        penultimate_triplet=False,
        with_temporal=False,
        ssp=None,
        loss_frame=None,
        embedding_parts=('cls', 'proj')))

# Stage 1, CLIP-ReID's schedule, on the dense clips of each training
# tracklet (their mean), then the 80 epochs of TF-CLIP's recipe.
custom_hooks = [
    dict(
        type='PromptLearningHook',
        pipeline={{_base_.test_pipeline}},
        max_epochs=120,
        batch_size=64,
        optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=1e-4),
        lr_min=1e-6,
        warmup_lr_init=1e-5,
        warmup_epochs=5)
]
