# DEIM-RT-DETRv2-R34vd, 120 epochs on COCO (official DEIM
# configs/deim_rtdetrv2/deim_r34vd_120e_coco.yml): 50.9 AP (RT-DETRv2: 49.9).
# The recipe of deim_rtdetrv2_r18vd_coco.py on rtdetrv2_r34vd_coco.py.
_base_ = [
    './rtdetrv2_r34vd_coco.py', './_base_/models/deim.py',
    './_base_/datasets/coco_detection_deim.py'
]
model = dict(
    data_preprocessor=dict(batch_augments=_base_.deim_rtdetrv2_multi_scale),
    backbone=_base_.deim_trainable_backbone,
    decoder=_base_.deim_rtdetrv2_decoder,
    bbox_head=_base_.deim_rtdetrv2_head)
train_dataloader = dict(dataset=_base_.deim_train_dataset)

# policy epoch [4, 64, 117], mixup_epochs [4, 64], multi-scale until 117
max_epochs = 120
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(
    augmentation_schedule=dict(
        _delete_=True,
        type='AugmentationStageHook',
        stages=[
            dict(
                epoch=4,
                pipeline=_base_.train_pipeline_stage2,
                batch_augments=[
                    _base_.deim_batch_mixup, *_base_.deim_rtdetrv2_multi_scale
                ]),
            dict(
                epoch=64,
                pipeline=_base_.train_pipeline_stage3,
                batch_augments=_base_.deim_rtdetrv2_multi_scale),
            dict(
                epoch=117,
                pipeline=_base_.train_pipeline_stage4,
                batch_augments=None)
        ]))

# AdamW lr 2e-4, backbone 1e-4 (official group '^(?=.*backbone)(?!.*norm).*$'),
# no weight decay on norms ('^(?=.*(?:norm|bn)).*$'). mmengine's custom_keys
# take precedence over norm_decay_mult, so the (trainable) backbone
# BatchNorms keep the weight decay and take the backbone lr here; officially
# they train at the base lr without decay.
optim_wrapper = dict(
    optimizer=dict(lr=2e-4),
    paramwise_cfg=dict(
        _delete_=True,
        custom_keys={'backbone': dict(lr_mult=0.5)},
        norm_decay_mult=0.0))
# FlatCosine: quadratic warm-up over 2000 iterations, flat until epoch 64,
# cosine to 0.5 x lr at epoch 117 (120 - no_aug_epoch 3), then constant
param_scheduler = [
    dict(type='QuadraticWarmupLR', by_epoch=False, begin=0, end=2000),
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=0.5,
        by_epoch=True,
        begin=64,
        end=117,
        convert_to_iter_based=True)
]
