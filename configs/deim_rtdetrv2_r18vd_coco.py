# DEIM-RT-DETRv2-R18vd, 120 epochs on COCO (official DEIM
# configs/deim_rtdetrv2/deim_r18vd_120e_coco.yml): 49.0 AP (RT-DETRv2-R18: 47.9
# in DEIM's table, 48.1 released). RT-DETRv2-R18 (rtdetrv2_r18vd_coco.py) with
# DEIM's model changes (SiLU MLPs, as_reg query positions, MAL:
# _base_/models/deim.py), Dense O2O (Mosaic + MixUp in four stages:
# _base_/datasets/coco_detection_deim.py) and the FlatCosine schedule. Official
# DEIM-RT-DETRv2 checkpoints convert with
# tools/model_converters/rtdetr_official_to_mm.py --version v2 --config (this
# file). 4 GPUs x 4 images, AMP (`--amp`).
_base_ = [
    './rtdetrv2_r18vd_coco.py', './_base_/models/deim.py',
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

# AdamW lr 2e-4 everywhere (the backbone too), no weight decay on norms
optim_wrapper = dict(optimizer=dict(lr=2e-4))
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
