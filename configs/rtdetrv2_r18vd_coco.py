# RT-DETRv2-S (R18vd), 120 epochs on COCO (official rtdetrv2_pytorch
# configs/rtdetrv2/rtdetrv2_r18vd_120e_coco.yml): 48.1 AP, 20 M parameters
# (checkpoint rtdetrv2_r18vd_120e_coco_rerun_48.1.pth). The architecture is
# v1's (3 decoder layers, 4 sampling points per level, 100 denoising queries;
# trainable backbone BatchNorm: freeze_at=-1, freeze_norm=False): official v2
# checkpoints convert with tools/model_converters/rtdetr_official_to_mm.py
# --version v2 --config (this file). 4 GPUs x 4 images, AMP (`--amp`). AdamW lr
# 1e-4, weight decay 1e-4, gradient clipping 0.1 and EMA 0.9999 (warm-up 2000)
# as v1 (configs/_base_/schedules/rtdetr_6x.py).
_base_ = './rtdetr_r18vd_coco.py'
# No multi-scale training: the R18 file sets `collate_fn: scales: ~`, and
# the official BatchImageCollateFunction resizes a batch only when scales is
# not None; every batch stays at 640.
model = dict(data_preprocessor=dict(batch_augments=None))
max_epochs = 120
train_cfg = dict(max_epochs=max_epochs)
# from epoch 117 (0-based) on: no photometric distortion, zoom-out or IoU
# crop (policy epoch 117)
default_hooks = dict(
    augmentation_schedule=dict(type='StopAugmentationHook', switch_epoch=117))
# One official group, '^(?=.*(?:norm|bn)).*$' without weight decay: every
# norm, the backbone's included, loses it; biases keep it; the backbone
# trains at the base lr 1e-4 (R18 defines no backbone group). mmengine
# selects norms by type: the same parameters.
optim_wrapper = dict(paramwise_cfg=dict(_delete_=True, norm_decay_mult=0.0))
# LinearWarmup(2000): factor min(1, (i + 1) / 2000) at iteration i, exactly
# mmengine's LinearLR from 1/2000 (it reaches 1 at iteration end - 1); then
# constant (the official MultiStepLR milestone, epoch 1000, is never reached)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1 / 2000,
        by_epoch=False,
        begin=0,
        end=2000)
]
# the official runtime synchronises BatchNorm statistics across GPUs
sync_bn = 'torch'
