# D-FINE-S's recipe (configs/dfine_hgnetv2_s_coco.py: 132 epochs, stop epoch
# 120, 3 decoder layers) with the PResNet-18-vd backbone of
# configs/rtdetr_r18vd_coco.py. No official D-FINE result exists for it;
# RT-DETR-R18vd reaches 46.5 AP in 72 epochs.
_base_ = './dfine_hgnetv2_s_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='PResNetV1d',
        depth=18,
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        style='pytorch',
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/lyuwenyu/storage/releases/'
            'download/v0.1/ResNet18_vd_pretrained_from_paddle.pth')),
    neck=dict(in_channels=[128, 256, 512]))
# backbone lr x0.1, as RT-DETR-R18vd
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
