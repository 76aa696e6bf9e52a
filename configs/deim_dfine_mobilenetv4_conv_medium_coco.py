# DEIM-D-FINE-S's recipe (configs/deim_dfine_hgnetv2_s_coco.py: Dense O2O, MAL,
# FlatCosine, SiLU MLPs; 132 epochs, policy [4, 64, 120]) with the
# MobileNetV4-conv-medium backbone of
# configs/dfine_mobilenetv4_conv_medium_coco.py (its ImageNet weights, settings
# and backbone learning rate). No official DEIM result exists for it.
_base_ = './deim_dfine_hgnetv2_s_coco.py'
model = dict(
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    backbone=dict(
        _delete_=True,
        type='MobileNetV4',
        arch='conv_medium',
        out_indices=(1, 2, 3),  # 80/160/256 channels, TF endpoints
        frozen_stages=0,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='timm://mobilenetv4_conv_medium.e500_r256_in1k')),
    neck=dict(in_channels=[80, 160, 256]))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
