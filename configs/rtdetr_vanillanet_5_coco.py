# RT-DETR with a VanillaNet-5 backbone (Chen et al., NeurIPS 2023; 15.5M
# params deployed, 72.49 ImageNet top-1) on COCO, 72 epochs. Only the
# backbone, the neck's in_channels, the backbone learning rate and the
# deep-training hook differ from RT-DETR-R50vd; the other VanillaNet variants
# inherit this file and change the arch, its checkpoint (and act_num) and the
# neck's in_channels.
_base_ = [
    '_base_/models/rtdetr_r50vd.py',
    '_base_/datasets/coco_detection_rtdetr.py',
    '_base_/schedules/rtdetr_6x.py', '_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='VanillaNet',
        arch='5',
        act_num=3,  # the ImageNet release; 4 only for the KD pretrain of 13
        out_indices=(1, 2, 3),  # the last layer at strides 8/16/32
        # RT-DETR's recipe for pretrained backbones (R50vd: freeze_at=0,
        # frozen norms): the stem frozen, BN statistics kept (the official
        # VanillaNet Mask R-CNN trains every SyncBN instead)
        frozen_stages=0,
        norm_eval=True,
        # official ImageNet-1k release, weights under `model_ema`, train form
        # (a deploy=True backbone fuses it on loading); classifier dropped
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/huawei-noah/VanillaNet/releases/'
            'download/ckpt/vanillanet_5.pth')),
    neck=dict(in_channels=[1024, 2048, 4096]))

# RT-DETR's 0.1x backbone learning rate for an ImageNet-pretrained backbone.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))

# VanillaNet's deep-training schedule beside the base EMA hook. The released
# weights are trained to act_learn=1 (linear activations between the convs),
# so with the Pretrained init_cfg above the hook is a no-op; trained from
# scratch (init_cfg=None) it moves act_learn 0 -> 1 over the first third of
# the schedule (official: 100 of 300 epochs), on the model and on its EMA
# copy.
custom_hooks = _base_.custom_hooks + [
    dict(type='VanillaNetDeepTrainingHook', decay_epochs=24)
]
