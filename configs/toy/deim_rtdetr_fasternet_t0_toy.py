# The DEIM recipe on the README's toy RT-DETR (FasterNet-T0 backbone, the
# same model and 500 iterations as configs/toy/rtdetr_fasternet_t0_toy.py):
# Dense O2O (Mosaic / MixUp) in four stages, the Matchability-Aware Loss and
# the FlatCosine schedule, scaled to 10 epochs.
#
#   python tools/train.py configs/toy/deim_rtdetr_fasternet_t0_toy.py
#
# DEIM-R18's policy [4, 64, 117] of 120 epochs becomes [1, 5, 9] of 10:
# epoch 0 plain, 1-4 Mosaic (96 px tiles) or zoom-out + IoU crop per sample
# and MixUp per batch, 5-8 RT-DETR's augmentation, 9 plain. No multi-scale,
# as the RT-DETR toy recipe. The architecture is unchanged (DEIM's SiLU
# MLPs and as_reg query positions are model changes, left out so that the
# comparison is of the recipe alone).
_base_ = [
    './rtdetr_fasternet_t0_toy.py', '../_base_/models/deim.py',
    '../_base_/datasets/toy_shapes_deim.py'
]
model = dict(bbox_head=dict(loss_cls=_base_.deim_loss_cls))
train_dataloader = dict(dataset=_base_.deim_train_dataset)
default_hooks = dict(
    augmentation_schedule=dict(
        type='AugmentationStageHook',
        stages=[
            dict(
                epoch=1,
                pipeline=_base_.train_pipeline_stage2,
                batch_augments=[_base_.deim_batch_mixup]),
            dict(
                epoch=5,
                pipeline=_base_.train_pipeline_stage3,
                batch_augments=None),
            dict(
                epoch=9,
                pipeline=_base_.train_pipeline_stage4,
                batch_augments=None)
        ]))
# FlatCosine: quadratic warm-up over the toy's 30 iterations, flat until
# epoch 5, cosine to 0.5 x lr at epoch 9, then constant
param_scheduler = [
    dict(type='QuadraticWarmupLR', by_epoch=False, begin=0, end=30),
    dict(
        type='CosineAnnealingLR',
        eta_min_ratio=0.5,
        by_epoch=True,
        begin=5,
        end=9,
        convert_to_iter_based=True)
]
