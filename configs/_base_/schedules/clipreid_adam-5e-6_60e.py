# CLIP-ReID's two stages (their configs/person/vit_clipreid.yml, SOLVER).
# Stage 1 (prompt learning, PromptLearningHook, before the training loop):
# every training image once through the frozen encoder (their test
# transforms), then 120 epochs over the cached features in batches of 64,
# Adam 3.5e-4 with weight decay 1e-4, a cosine from 3.5e-4 to 1e-6 after 5
# warm-up epochs from 1e-5. Video configs replace the hook's pipeline.
custom_hooks = [
    dict(
        type='PromptLearningHook',
        pipeline=[
            dict(
                type='SampleTrackletFrames',
                clip_len=1,
                mode='rrs',
                test_mode=True),
            dict(type='LoadTrackletFrames'),
            dict(type='TrackletResize', scale=(128, 256)),  # (w, h)
            dict(type='PackTrackletInputs'),
        ],
        max_epochs=120,
        batch_size=64,
        optimizer=dict(type='Adam', lr=3.5e-4, weight_decay=1e-4),
        lr_min=1e-6,
        warmup_lr_init=1e-5,
        warmup_epochs=5)
]

# Stage 2 (their SOLVER.STAGE2, solver/make_optimizer_prompt.py and
# processor/processor_clipreid_stage2.py): every step under fp16 autocast
# with a dynamic GradScaler (an fp32 OptimWrapper on a machine without a
# GPU, logged by the constructor); Adam 5e-6, weight decay 1e-4; "bias"
# anywhere in a parameter's name doubles its lr (BIAS_LR_FACTOR 2, LayerNorm
# biases and in_proj_bias included) with WEIGHT_DECAY_BIAS 1e-4;
# LARGE_FC_LR is off. The same name rule as TF-CLIP's recipe, hence the same
# constructor.
optim_wrapper = dict(
    type='AmpOptimWrapper',
    dtype='float16',
    loss_scale='dynamic',
    optimizer=dict(type='Adam', lr=5e-6, weight_decay=1e-4),
    constructor='TFCLIPOptimWrapperConstructor',
    paramwise_cfg=dict(bias_lr_mult=2.0, bias_decay_mult=1.0))

# WarmupMultiStepLR stepped per epoch: factor 0.1 * (1 - e / 10) + e / 10
# for epochs e = 0..9 (WARMUP_FACTOR 0.1, WARMUP_ITERS 10), then 1.0; x0.1
# at epochs 30 and 50; 60 epochs. LinearLR reaches its end factor after
# end - begin - 1 steps, so end=11 gives 1.0 at epoch 10 as theirs.
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=0.1,
        end_factor=1.0,
        by_epoch=True,
        begin=0,
        end=11),
    dict(
        type='MultiStepLR',
        milestones=[30, 50],
        gamma=0.1,
        by_epoch=True,
        begin=0,
        end=60),
]
# Their EVAL_PERIOD and CHECKPOINT_PERIOD are 60: one test at the end.
train_cfg = dict(type='EpochBasedTrainLoop', max_epochs=60, val_interval=60)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')
# 64 images per batch (16 identities x 4), one GPU.
auto_scale_lr = dict(enable=False, base_batch_size=64)
