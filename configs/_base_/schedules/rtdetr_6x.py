# RT-DETR 6x schedule (72 epochs), rtdetr_pytorch/configs/rtdetr/include/
# optimizer.yml: AdamW lr 1e-4, weight decay 1e-4, backbone lr x0.1, no
# weight decay on norms and biases, grad clip 0.1, EMA 0.9999 (warm-up 2000),
# constant learning rate after the warm-up.
max_epochs = 72
train_cfg = dict(
    type='EpochBasedTrainLoop', max_epochs=max_epochs, val_interval=1)
val_cfg = dict(type='ValLoop')
test_cfg = dict(type='TestLoop')

optim_wrapper = dict(
    type='OptimWrapper',
    optimizer=dict(
        type='AdamW', lr=1e-4, betas=(0.9, 0.999), weight_decay=1e-4),
    clip_grad=dict(max_norm=0.1, norm_type=2),
    # Official groups select "bias" and "norm" by parameter-name regex in the
    # encoder/decoder; mmengine selects all biases and norm layers by type
    # (the frozen R50/R101 backbone norms have no gradient either way; for
    # R18/R34 the backbone norms keep weight decay here, not officially).
    paramwise_cfg=dict(
        custom_keys={'backbone': dict(lr_mult=0.1)},
        norm_decay_mult=0.0,
        bias_decay_mult=0.0))

# Linear warm-up over 2000 iterations as in the Paddle recipe that trained
# the released v1 weights (and in v2); rtdetr_pytorch v1 itself has none.
# The official MultiStepLR milestone (epoch 1000) is never reached: the
# learning rate is constant afterwards.
param_scheduler = [
    dict(
        type='LinearLR', start_factor=0.001, by_epoch=False, begin=0, end=2000)
]

# ModelEMA(decay=0.9999, warmups=2000): decay_t = 0.9999 * (1 - exp(-t/2000))
# == mmdet's ExpMomentumEMA(momentum=1e-4, gamma=2000); buffers included.
custom_hooks = [
    dict(
        type='EMAHook',
        ema_type='ExpMomentumEMA',
        momentum=0.0001,
        gamma=2000,
        update_buffers=True,
        priority=49)
]

# 4 GPUs x 4 images
auto_scale_lr = dict(enable=False, base_batch_size=16)
