# D-FINE-S's recipe (configs/dfine_hgnetv2_s_coco.py) with the RIFormer-S12
# backbone of configs/rtdetr_riformer_s12_coco.py (ImageNet weights,
# training form; switch_to_deploy folds its norms and affine mixers).
_base_ = './dfine_hgnetv2_s_coco.py'
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
