# RT-DETRv2-X (R101vd), 72 epochs on COCO (official rtdetrv2_pytorch
# configs/rtdetrv2/rtdetrv2_r101vd_6x_coco.yml): 54.3 AP, 76 M parameters
# (checkpoint rtdetrv2_r101vd_6x_coco_from_paddle.pth). The architecture is
# v1's (neck 384 wide, encoder FFN 2048, 6 decoder layers, 4 sampling points
# per level, 100 denoising queries): official v2 checkpoints convert with
# tools/model_converters/rtdetr_official_to_mm.py --version v2 --config (this
# file). 4 GPUs x 4 images, AMP (`--amp`). AdamW lr 1e-4, weight decay 1e-4,
# gradient clipping 0.1 and EMA 0.9999 (warm-up 2000) as v1
# (configs/_base_/schedules/rtdetr_6x.py).
_base_ = './rtdetr_r101vd_coco.py'
# the official BatchImageCollateFunction resizes each batch to a size drawn
# from `scales` (nearest; bilinear here) until its stop epoch
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(
            type='BatchRandomChoiceResize',
            scales=[
                480, 512, 544, 576, 608, 640, 640, 640, 672, 704, 736, 768, 800
            ])
    ]))
max_epochs = 72
train_cfg = dict(max_epochs=max_epochs)
# from epoch 71 (0-based) on: no photometric distortion, zoom-out, IoU crop
# or multi-scale (include/dataloader.yml: policy epoch and collate_fn
# stop_epoch 71)
default_hooks = dict(
    augmentation_schedule=dict(type='StopAugmentationHook', switch_epoch=71))
# Official groups (regexes over names): the backbone
# ('^(?=.*backbone)(?!.*norm|bn).*$') at lr 1e-6; encoder/decoder norms
# ('norm|bn') without weight decay; biases keep it (v1 drops it). The
# backbone norms are frozen. mmengine selects norms by type: the same
# parameters.
optim_wrapper = dict(
    paramwise_cfg=dict(
        _delete_=True,
        custom_keys={'backbone': dict(lr_mult=0.01)},
        norm_decay_mult=0.0))
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
