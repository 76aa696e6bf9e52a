# DEIM-D-FINE-S's recipe (configs/deim_dfine_hgnetv2_s_coco.py: Dense O2O,
# MAL, FlatCosine, SiLU MLPs; 132 epochs, policy [4, 64, 120]) with the
# RIFormer-S12 backbone of configs/dfine_riformer_s12_coco.py (its ImageNet
# weights, settings and backbone learning rate). No official DEIM result
# exists for it.
_base_ = './deim_dfine_hgnetv2_s_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='RIFormer',
        arch='s12',
        out_indices=(1, 2, 3),  # 128/320/512 channels
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v1/'
            'riformer/riformer-s12_32xb128_in1k_20230406-6741ce71.pth',
            prefix='backbone.')),
    neck=dict(in_channels=[128, 320, 512]))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
