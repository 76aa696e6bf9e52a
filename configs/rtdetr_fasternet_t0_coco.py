# RT-DETR with a FasterNet-T0 backbone (3.9M params, 71.9 ImageNet top-1)
# on COCO, 72 epochs: the FasterNet-S config with the arch, its stochastic
# depth, its checkpoint and the neck's in_channels changed.
_base_ = './rtdetr_fasternet_s_coco.py'
model = dict(
    backbone=dict(
        arch='t0',
        # no official detection config: the ImageNet training rate
        drop_path_rate=0.0,
        init_cfg=dict(
            checkpoint='https://github.com/JierunChen/FasterNet/releases/'
            'download/v1.0/fasternet_t0-epoch.281-val_acc1.71.9180.pth')),
    neck=dict(in_channels=[80, 160, 320]))
