# DEIM-D-FINE-L, 58 epochs on COCO (official DEIM
# configs/deim_dfine/deim_hgnetv2_l_coco.yml): 54.7 AP (D-FINE-L: 54.0).
# D-FINE-L (dfine_hgnetv2_l_coco.py) with DEIM's model changes (SiLU MLPs, MAL,
# trainable backbone norms: _base_/models/deim.py), Dense O2O (Mosaic + MixUp
# in four stages: _base_/datasets/coco_detection_deim.py) and the FlatCosine
# schedule. 58 epochs instead of 80. Official DEIM-D-FINE checkpoints convert
# with tools/model_converters/dfine_official_to_mm.py --config (this file).
_base_ = [
    './dfine_hgnetv2_l_coco.py', './_base_/models/deim.py',
    './_base_/datasets/coco_detection_deim.py'
]
model = dict(
    backbone=_base_.deim_trainable_backbone,
    decoder=_base_.deim_dfine_decoder,
    bbox_head=_base_.deim_dfine_head)
train_dataloader = dict(dataset=_base_.deim_train_dataset)

# policy [4, 29, 50], mixup_epochs [4, 29], D-FINE-L's multi-scale until 50
max_epochs = 58
train_cfg = dict(max_epochs=max_epochs)
multi_scale = _base_.model.data_preprocessor.batch_augments
default_hooks = dict(
    augmentation_schedule=dict(
        _delete_=True,
        type='AugmentationStageHook',
        stages=[
            dict(
                epoch=4,
                pipeline=_base_.train_pipeline_stage2,
                batch_augments=[_base_.deim_batch_mixup, *(
                    multi_scale or [])]),
            dict(
                epoch=29,
                pipeline=_base_.train_pipeline_stage3,
                batch_augments=multi_scale),
            dict(
                epoch=50,
                pipeline=_base_.train_pipeline_stage4,
                batch_augments=None)
        ]))
# AdamW lr 5e-4, backbone 2.5e-5 (D-FINE-L's groups and weight decay)
optim_wrapper = dict(optimizer=dict(lr=5e-4))
# FlatCosine: quadratic warm-up over 2000 iterations, flat until epoch 29,
# cosine to 0.5 x lr at epoch 50 (58 - no_aug_epoch 8), then constant
param_scheduler = [
    dict(type='QuadraticWarmupLR', by_epoch=False, begin=0, end=2000),
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=0.5,
        by_epoch=True,
        begin=29,
        end=50,
        convert_to_iter_based=True)
]
