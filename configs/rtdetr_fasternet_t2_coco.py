# RT-DETR with a FasterNet-T2 backbone (15.0M params, 78.9 ImageNet top-1)
# on COCO, 72 epochs: the FasterNet-S config with the arch, its stochastic
# depth, its checkpoint and the neck's in_channels changed.
_base_ = './rtdetr_fasternet_s_coco.py'
model = dict(
    backbone=dict(
        arch='t2',
        # no official detection config: the ImageNet training rate
        drop_path_rate=0.05,
        init_cfg=dict(
            checkpoint='https://github.com/JierunChen/FasterNet/releases/'
            'download/v1.0/fasternet_t2-epoch.289-val_acc1.78.8860.pth')),
    neck=dict(in_channels=[192, 384, 768]))
