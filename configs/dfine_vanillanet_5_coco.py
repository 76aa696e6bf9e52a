# D-FINE-S's recipe (configs/dfine_hgnetv2_s_coco.py) with the VanillaNet-5
# backbone of configs/rtdetr_vanillanet_5_coco.py (official ImageNet
# weights; the stem frozen and BN statistics kept, as that config explains;
# deep-training activations decay over the first 24 epochs).
_base_ = './dfine_hgnetv2_s_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='VanillaNet',
        arch='5',
        act_num=3,
        out_indices=(1, 2, 3),  # 1024/2048/4096 channels
        frozen_stages=0,
        norm_eval=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/huawei-noah/VanillaNet/releases/'
            'download/ckpt/vanillanet_5.pth')),
    neck=dict(in_channels=[1024, 2048, 4096]))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
custom_hooks = _base_.custom_hooks + [
    dict(type='VanillaNetDeepTrainingHook', decay_epochs=24)
]
