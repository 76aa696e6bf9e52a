# DEIM-D-FINE-S's recipe (configs/deim_dfine_hgnetv2_s_coco.py: Dense O2O,
# MAL, FlatCosine, SiLU MLPs; 132 epochs, policy [4, 64, 120]) with the
# VanillaNet-5 backbone of configs/dfine_vanillanet_5_coco.py (its ImageNet
# weights, settings and backbone learning rate). No official DEIM result
# exists for it.
_base_ = './deim_dfine_hgnetv2_s_coco.py'
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
