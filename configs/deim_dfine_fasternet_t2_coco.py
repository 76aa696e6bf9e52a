# DEIM-D-FINE-S's recipe (configs/deim_dfine_hgnetv2_s_coco.py: Dense O2O,
# MAL, FlatCosine, SiLU MLPs; 132 epochs, policy [4, 64, 120]) with the
# FasterNet-T2 backbone of configs/dfine_fasternet_t2_coco.py (its ImageNet
# weights, settings and backbone learning rate). No official DEIM result
# exists for it.
_base_ = './deim_dfine_hgnetv2_s_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        arch='t2',
        out_indices=(1, 2, 3),  # 192/384/768 channels
        drop_path_rate=0.05,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/JierunChen/FasterNet/releases/'
            'download/v1.0/fasternet_t2-epoch.289-val_acc1.78.8860.pth')),
    neck=dict(in_channels=[192, 384, 768]))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
