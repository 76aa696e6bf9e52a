# D-FINE schedule (configs/dfine/include/optimizer.yml and the per-size
# files of the official repository). The values here are D-FINE-L's; every
# size config sets its epochs, stop epoch, learning rates and batch.
# AdamW betas (0.9, 0.999), gradient clipping 0.1; linear warm-up over 500
# iterations, then a constant learning rate (the official MultiStepLR
# milestone, epoch 500, is never reached). The official recipe trains with
# AMP (`--amp` here).
max_epochs = 80
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=2.5e-4, betas=(0.9, 0.999), weight_decay=1.25e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    # Official parameter groups (regexes over names): every backbone
    # parameter, BatchNorms included, at the backbone lr with weight decay
    # (its norm-group regex `(?=.*norm|bn)` never matches HGNetv2's names);
    # no weight decay on encoder/decoder norms (L/X; N/S/M also biases, see
    # their configs). custom_keys take precedence over norm_decay_mult in
    # mmengine, so the backbone keeps its decay.
    paramwise_cfg=dict(
        custom_keys={'backbone': dict(lr_mult=0.05)}, norm_decay_mult=0.0))

# LinearWarmup(500): factor (i + 1) / 500 at iteration i, exactly mmengine's
# LinearLR from 1/500 (its steps are (1 - 1/500) / 499 = 1/500).
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1 / 500,
        by_epoch=False,
        begin=0,
        end=500)
]

# ModelEMA(decay=0.9999, warmups=1000): decay_t = 0.9999 (1 - exp(-t/1000))
# == mmdet's ExpMomentumEMA(momentum=1e-4, gamma=1000); buffers included.
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        gamma=1000,
        update_buffers=True,
        priority=49)
]
# From the stop epoch on, no photometric distortion, zoom-out, IoU crop or
# multi-scale: StopAugmentationHook, a default hook of the model configs
# (`default_hooks = dict(augmentation_schedule=dict(switch_epoch=...))`).

# 4 GPUs x 8 images
auto_scale_lr = dict(enable=False, base_batch_size=32)
