# RT-DETR with a FasterNet-L backbone (93.4M params, 83.5 ImageNet top-1)
# on COCO, 72 epochs: the FasterNet-S config with the arch, its stochastic
# depth, its checkpoint and the neck's in_channels changed.
_base_ = './rtdetr_fasternet_s_coco.py'
model = dict(
    backbone=dict(
        arch='l',
        drop_path_rate=0.3,  # official Mask R-CNN config
        init_cfg=dict(
            checkpoint='https://github.com/JierunChen/FasterNet/releases/'
            'download/v1.0/fasternet_l-epoch.299-val_acc1.83.5060.pth')),
    neck=dict(in_channels=[384, 768, 1536]))
