# DEIM-D-FINE-S's recipe (configs/deim_dfine_hgnetv2_s_coco.py: Dense O2O,
# MAL, FlatCosine, SiLU MLPs; 132 epochs, policy [4, 64, 120]) with the
# RevCol-T backbone of configs/dfine_revcol_tiny_coco.py (its ImageNet
# weights, settings and backbone learning rate). No official DEIM result
# exists for it.
_base_ = './deim_dfine_hgnetv2_s_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='RevCol',
        arch='tiny',
        out_indices=(1, 2, 3),  # 128/256/512 channels
        frozen_stages=-1,
        drop_path_rate=0.3,
        save_memory=True,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/megvii-research/RevCol/'
            'releases/download/checkpoint/revcol_tiny_1k.pth')),
    neck=dict(in_channels=[128, 256, 512]))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
