# Runtime settings shared by every config.
default_scope = 'mmtfclip'
# mmtfclip.engine.runner.ReIDRunner: what a run needs beyond mmengine's
# Runner (batch split, CPU distributed set-up, config checks, plain-data
# checkpoints checked against the model); every tool builds it with
# RUNNERS.build(cfg), and so can a notebook.
runner_type = 'ReIDRunner'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Keep the last 3 epoch checkpoints; `save_best` is set by configs that
    # validate during training.
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    # mmtfclip's: the model against the training set's identities and
    # cameras before any work; the random numbers of each epoch from (seed,
    # epoch), so that a resumed run goes on as the uninterrupted one; epoch
    # and evaluation times; a stop at the first non-finite loss, before it
    # reaches a checkpoint.
    config_check=dict(type='ConfigCheckHook'),
    epoch_seed=dict(type='EpochSeedHook'),
    epoch_summary=dict(type='EpochSummaryHook'),
    finite_loss=dict(type='FiniteLossHook'),
)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
    # Without CUDA: threads of the main process; 'auto' leaves a core to
    # each training data-loader worker (OMP_NUM_THREADS wins).
    cpu_threads='auto',
)

# LocalVisBackend writes the scalars and the json log (read by
# tools/analysis_tools/analyze_logs.py) to <work_dir>/<timestamp>/vis_data.
# TensorBoard as well (`pip install tensorboard`, requirements/optional.txt;
# event files in the same folder): in a config that inherits this file,
#   visualizer = dict(vis_backends=[
#       *_base_.vis_backends, dict(type='TensorboardVisBackend')])
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='Visualizer', vis_backends=vis_backends)

log_processor = dict(by_epoch=True, window_size=50)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
