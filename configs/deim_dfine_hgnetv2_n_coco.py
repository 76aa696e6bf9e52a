# DEIM-D-FINE-N, 160 epochs on COCO (official DEIM
# configs/deim_dfine/deim_hgnetv2_n_coco.yml): 43.0 AP (D-FINE-N: 42.8).
# D-FINE-N (dfine_hgnetv2_n_coco.py) with DEIM's model changes (SiLU MLPs, MAL,
# trainable backbone norms: _base_/models/deim.py), Dense O2O (Mosaic + MixUp
# in four stages: _base_/datasets/coco_detection_deim.py) and the FlatCosine
# schedule. Official DEIM-D-FINE checkpoints convert with
# tools/model_converters/dfine_official_to_mm.py --config (this file).
_base_ = [
    './dfine_hgnetv2_n_coco.py', './_base_/models/deim.py',
    './_base_/datasets/coco_detection_deim.py'
]
model = dict(
    backbone=_base_.deim_trainable_backbone,
    decoder=_base_.deim_dfine_decoder,
    bbox_head=_base_.deim_dfine_head)
train_dataloader = dict(dataset=_base_.deim_train_dataset)

# policy [4, 78, 148], mixup_epochs [4, 78], no multi-scale (as D-FINE-N)
max_epochs = 160
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
                epoch=78,
                pipeline=_base_.train_pipeline_stage3,
                batch_augments=multi_scale),
            dict(
                epoch=148,
                pipeline=_base_.train_pipeline_stage4,
                batch_augments=None)
        ]))
# the optimizer groups and learning rates are D-FINE-N's
# FlatCosine with flat_epoch 7800 > 160 epochs and lr_gamma 1: the
# quadratic warm-up over 2000 iterations, then a constant learning rate
param_scheduler = [
    dict(type='QuadraticWarmupLR', by_epoch=False, begin=0, end=2000)
]
