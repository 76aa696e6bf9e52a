# D-FINE-S's recipe (configs/dfine_hgnetv2_s_coco.py) with the
# MobileNetV4-conv-medium backbone of
# configs/rtdetr_mobilenetv4_conv_medium_coco.py (timm's ImageNet weights,
# which want ImageNet mean/std).
_base_ = './dfine_hgnetv2_s_coco.py'
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
