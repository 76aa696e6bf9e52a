# RT-DETR with a VanillaNet-9 backbone (41.4M params deployed, 79.87
# ImageNet top-1) on COCO, 72 epochs: the VanillaNet-5 config with the arch
# and its checkpoint changed (same output channels).
_base_ = './rtdetr_vanillanet_5_coco.py'
model = dict(
    backbone=dict(
        arch='9',
        init_cfg=dict(
            checkpoint='https://github.com/huawei-noah/VanillaNet/releases/'
            'download/ckpt/vanillanet_9.pth')),
    neck=dict(in_channels=[1024, 2048, 4096]))
