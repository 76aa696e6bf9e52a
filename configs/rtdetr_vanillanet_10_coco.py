# RT-DETR with a VanillaNet-10 backbone (45.7M params deployed, 80.57
# ImageNet top-1) on COCO, 72 epochs: the VanillaNet-5 config with the arch
# and its checkpoint changed (same output channels).
_base_ = './rtdetr_vanillanet_5_coco.py'
model = dict(
    backbone=dict(
        arch='10',
        init_cfg=dict(
            checkpoint='https://github.com/huawei-noah/VanillaNet/releases/'
            'download/ckpt/vanillanet_10.pth')),
    neck=dict(in_channels=[1024, 2048, 4096]))
