# RT-DETR with a VanillaNet-13-1.5x backbone (127.8M params deployed, 82.53
# ImageNet top-1) on COCO, 72 epochs: the VanillaNet-5 config with the arch,
# its checkpoint and the neck's in_channels changed. The ada_pool release
# (83.11 top-1: stride-3 stem, 1.8x the tokens, same parameters) is
# arch='13_x1_5_ada_pool' with .../ckpt/vanillanet_13_x1_5_ada_pool.pth.
_base_ = './rtdetr_vanillanet_5_coco.py'
model = dict(
    backbone=dict(
        arch='13_x1_5',
        init_cfg=dict(
            checkpoint='https://github.com/huawei-noah/VanillaNet/releases/'
            'download/ckpt/vanillanet_13_x1_5.pth')),
    neck=dict(in_channels=[1536, 3072, 6144]))
