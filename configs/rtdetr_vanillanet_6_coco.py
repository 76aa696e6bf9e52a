# RT-DETR with a VanillaNet-6 backbone (32.5M params deployed, 76.36
# ImageNet top-1) on COCO, 72 epochs: the VanillaNet-5 config with the arch
# and its checkpoint changed (same output channels).
_base_ = './rtdetr_vanillanet_5_coco.py'
model = dict(
    backbone=dict(
        arch='6',
        init_cfg=dict(
            checkpoint='https://github.com/huawei-noah/VanillaNet/releases/'
            'download/ckpt/vanillanet_6.pth')),
    neck=dict(in_channels=[1024, 2048, 4096]))
