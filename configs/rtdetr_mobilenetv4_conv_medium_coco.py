# RT-DETR with a MobileNetV4-Conv-M backbone (Qin et al., 2024; timm, 9.7M
# params with its classifier, 79.9 ImageNet top-1) on COCO, 72 epochs. The
# other MobileNetV4 configs inherit this file.
#
# Neck and decoder: the RT-DETR-R18vd ones (CSPRep expansion 0.5, 3 decoder
# layers, hidden_dim 256): ResNet-18 (11.7M params, 256/512-channel C4/C5)
# is the closest published RT-DETR backbone in size and width. Here they hold
# 8.9M parameters next to the 7.0M of the backbone trunk; the R50vd ones
# (expansion 1.0, 6 layers) would hold 18.7M. conv_small gets a nano-sized
# neck and decoder, the large archs the R50vd ones (see their files).
_base_ = [
    '_base_/models/rtdetr_r50vd.py',
    '_base_/datasets/coco_detection_rtdetr.py',
    '_base_/schedules/rtdetr_6x.py', '_base_/default_runtime.py'
]
model = dict(
    # timm trained these weights on ImageNet-normalised RGB; RT-DETR's [0, 1]
    # input would shift every BatchNorm statistic of the pretrained stem.
    data_preprocessor=dict(
        mean=[123.675, 116.28, 103.53], std=[58.395, 57.12, 57.375]),
    backbone=dict(
        _delete_=True,
        type='MobileNetV4',
        arch='conv_medium',
        out_indices=(1, 2, 3),  # strides 8/16/32, TF endpoints
        frozen_stages=0,  # the stem (conv_stem + bn1), as D-FINE/RT-DETR
        norm_eval=False,
        # timm's ImageNet-1k weights from the Hugging Face hub (or its local
        # cache; see rtdetr_mm/models/backbones/mobilenetv4.py); the
        # classifier and the 960-channel head conv are dropped on loading.
        init_cfg=dict(
            type='Pretrained',
            checkpoint='timm://mobilenetv4_conv_medium.e500_r256_in1k')),
    neck=dict(in_channels=[80, 160, 256], expansion=0.5),
    decoder=dict(num_layers=3))

# RT-DETR's 0.1x backbone learning rate for an ImageNet-pretrained backbone.
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
