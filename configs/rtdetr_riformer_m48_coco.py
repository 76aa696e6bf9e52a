# RT-DETR with a RIFormer-M48 backbone (73.5M params, 82.8 ImageNet top-1)
# on COCO, 72 epochs: the RIFormer-S12 config with the arch, its official
# ImageNet-1k checkpoint and the neck's in_channels changed (the m
# variants' stages are 96/192/384/768 wide).
_base_ = './rtdetr_riformer_s12_coco.py'
model = dict(
    backbone=dict(
        arch='m48',
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v1/'
            'riformer/riformer-m48_32xb128_in1k_20230406-2b9d1abf.pth')),
    neck=dict(in_channels=[192, 384, 768]))
