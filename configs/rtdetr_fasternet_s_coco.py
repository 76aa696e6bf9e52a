# RT-DETR with a FasterNet-S backbone (Chen et al., CVPR 2023; 31.1M params,
# 81.3 ImageNet top-1) on COCO, 72 epochs. Only the backbone, the neck's
# in_channels and the backbone learning rate differ from RT-DETR-R50vd; the
# other FasterNet variants inherit this file and change the arch, its
# stochastic depth, its checkpoint and the neck's in_channels.
_base_ = [
    '_base_/models/rtdetr_r50vd.py',
    '_base_/datasets/coco_detection_rtdetr.py',
    '_base_/schedules/rtdetr_6x.py', '_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        arch='s',
        out_indices=(1, 2, 3),  # strides 8/16/32
        # a BatchNorm on every output, as the official detection model
        with_out_norm=True,
        # stochastic depth of the official Mask R-CNN config (s/m/l:
        # 0.15/0.2/0.3)
        drop_path_rate=0.15,
        frozen_stages=-1,
        norm_eval=False,
        # official ImageNet-1k weights (GitHub release v1.0, raw state dict in
        # the official layout; the classifier is dropped on loading, the
        # output norms start as identity)
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/JierunChen/FasterNet/releases/'
            'download/v1.0/fasternet_s-epoch.299-val_acc1.81.2840.pth')),
    neck=dict(in_channels=[256, 512, 1024]))

# RT-DETR's 0.1x backbone learning rate for an ImageNet-pretrained backbone
# (the official FasterNet detection recipe trains Mask R-CNN with a single
# AdamW lr for the whole model instead).
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
