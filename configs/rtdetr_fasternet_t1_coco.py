# RT-DETR with a FasterNet-T1 backbone (7.6M params, 76.2 ImageNet top-1)
# on COCO, 72 epochs: the FasterNet-S config with the arch, its stochastic
# depth, its checkpoint and the neck's in_channels changed.
_base_ = './rtdetr_fasternet_s_coco.py'
model = dict(
    backbone=dict(
        arch='t1',
        # no official detection config: the ImageNet training rate
        drop_path_rate=0.02,
        init_cfg=dict(
            checkpoint='https://github.com/JierunChen/FasterNet/releases/'
            'download/v1.0/fasternet_t1-epoch.291-val_acc1.76.2180.pth')),
    neck=dict(in_channels=[128, 256, 512]))
