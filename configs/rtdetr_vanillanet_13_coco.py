# RT-DETR with a VanillaNet-13 backbone (58.6M params deployed, 82.05
# ImageNet top-1) on COCO, 72 epochs: the VanillaNet-5 config with the arch
# and its checkpoint changed (same output channels). As in the official
# VanillaNet detection configs: act_num=4 and the ImageNet weights trained by
# knowledge distillation for downstream tasks; for the classification release
# use act_num=3 and .../download/ckpt/vanillanet_13.pth.
_base_ = './rtdetr_vanillanet_5_coco.py'
model = dict(
    backbone=dict(
        arch='13',
        act_num=4,
        init_cfg=dict(
            checkpoint='https://github.com/huawei-noah/VanillaNet/releases/'
            'download/ckpt/vanillanet_13_act_num_4_kd_pretrain.pth')),
    neck=dict(in_channels=[1024, 2048, 4096]))
