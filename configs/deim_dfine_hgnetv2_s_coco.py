# DEIM-D-FINE-S, 132 epochs on COCO (official DEIM
# configs/deim_dfine/deim_hgnetv2_s_coco.yml): 49.0 AP (D-FINE-S: 48.7).
# D-FINE-S (dfine_hgnetv2_s_coco.py) with DEIM's model changes (SiLU MLPs, MAL,
# trainable backbone norms: _base_/models/deim.py), Dense O2O (Mosaic + MixUp
# in four stages: _base_/datasets/coco_detection_deim.py) and the FlatCosine
# schedule. Official DEIM-D-FINE checkpoints convert with
# tools/model_converters/dfine_official_to_mm.py --config (this file).
_base_ = [
    './dfine_hgnetv2_s_coco.py', './_base_/models/deim.py',
    './_base_/datasets/coco_detection_deim.py'
]
model = dict(
    backbone=_base_.deim_trainable_backbone,
    decoder=_base_.deim_dfine_decoder,
    bbox_head=_base_.deim_dfine_head)
train_dataloader = dict(dataset=_base_.deim_train_dataset)

# policy [4, 64, 120], mixup_epochs [4, 64], D-FINE-S's multi-scale until 120
max_epochs = 132
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
                epoch=64,
                pipeline=_base_.train_pipeline_stage3,
                batch_augments=multi_scale),
            dict(
                epoch=120,
                pipeline=_base_.train_pipeline_stage4,
                batch_augments=None)
        ]))
# AdamW lr 4e-4, backbone 2e-4 (official '^(?=.*backbone)(?!.*bn).*$'), no
# weight decay on norms ('^(?=.*(?:norm|bn)).*$'; biases keep it). The
# backbone BatchNorms take the backbone lr with weight decay here
# (mmengine's custom_keys precede norm_decay_mult), the base lr without
# decay officially.
optim_wrapper = dict(
    optimizer=dict(lr=4e-4),
    paramwise_cfg=dict(
        _delete_=True,
        custom_keys={'backbone': dict(lr_mult=0.5)},
        norm_decay_mult=0.0))
# FlatCosine: quadratic warm-up over 2000 iterations, flat until epoch 64,
# cosine to 0.5 x lr at epoch 120 (132 - no_aug_epoch 12), then constant
param_scheduler = [
    dict(type='QuadraticWarmupLR', by_epoch=False, begin=0, end=2000),
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=0.5,
        by_epoch=True,
        begin=64,
        end=120,
        convert_to_iter_based=True)
]
