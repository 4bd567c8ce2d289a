# Runtime settings shared by every config.
default_scope = 'mmtfclip'

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # Keep the last 3 epoch checkpoints; `save_best` is set by configs that
    # validate during training.
    checkpoint=dict(type='CheckpointHook', interval=10, max_keep_ckpts=3),
    sampler_seed=dict(type='DistSamplerSeedHook'),
)

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
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
