# RT-DETR with a FasterNet-M backbone (53.5M params, 83.0 ImageNet top-1)
# on COCO, 72 epochs: the FasterNet-S config with the arch, its stochastic
# depth, its checkpoint and the neck's in_channels changed.
_base_ = './rtdetr_fasternet_s_coco.py'
model = dict(
    backbone=dict(
        arch='m',
        drop_path_rate=0.2,  # official Mask R-CNN config
        init_cfg=dict(
            checkpoint='https://github.com/JierunChen/FasterNet/releases/'
            'download/v1.0/fasternet_m-epoch.291-val_acc1.82.9620.pth')),
    neck=dict(in_channels=[288, 576, 1152]))
