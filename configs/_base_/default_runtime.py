# Runtime shared by every rtdetr_mm config (MMDetection 3.x style).
default_scope = 'mmdet'
# Registers rtdetr_mm's models, datasets and hooks in mmdet's registries, so
# mmdet's and mim's own tools can run these configs too.
custom_imports = dict(imports=['rtdetr_mm'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50),
    param_scheduler=dict(type='ParamSchedulerHook'),
    checkpoint=dict(
        type='CheckpointHook', interval=1, max_keep_ckpts=3, save_best='auto'),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='DetVisualizationHook'),
    # RNG states in checkpoints: --resume continues exactly (see the hook).
    random_state=dict(type='RandomStateHook'),
    # stops at the first NaN/inf loss, naming the term, before a checkpoint
    finite_loss=dict(type='FiniteLossHook'))

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'))

vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='DetLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(type='LogProcessor', window_size=50, by_epoch=True)

log_level = 'INFO'
load_from = None
resume = False
