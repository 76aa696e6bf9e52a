# RT-DETR with a VanillaNet-7 backbone (32.8M params deployed, 77.98
# ImageNet top-1) on COCO, 72 epochs: the VanillaNet-5 config with the arch
# and its checkpoint changed (same output channels).
_base_ = './rtdetr_vanillanet_5_coco.py'
model = dict(
    backbone=dict(
        arch='7',
        init_cfg=dict(
            checkpoint='https://github.com/huawei-noah/VanillaNet/releases/'
            'download/ckpt/vanillanet_7.pth')),
    neck=dict(in_channels=[1024, 2048, 4096]))
