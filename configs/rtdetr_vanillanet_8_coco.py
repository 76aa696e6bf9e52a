# RT-DETR with a VanillaNet-8 backbone (37.1M params deployed, 79.13
# ImageNet top-1) on COCO, 72 epochs: the VanillaNet-5 config with the arch
# and its checkpoint changed (same output channels).
_base_ = './rtdetr_vanillanet_5_coco.py'
model = dict(
    backbone=dict(
        arch='8',
        init_cfg=dict(
            checkpoint='https://github.com/huawei-noah/VanillaNet/releases/'
            'download/ckpt/vanillanet_8.pth')),
    neck=dict(in_channels=[1024, 2048, 4096]))
