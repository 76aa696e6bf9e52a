# RT-DETR with a RIFormer-S12 backbone (Wang et al., CVPR 2023: a MetaFormer
# whose token mixer is a per-channel affine map that folds away for
# inference; 11.9M params, 76.9 ImageNet top-1) on COCO, 72 epochs.
#
#   python tools/train.py configs/rtdetr_riformer_s12_coco.py
#   bash tools/dist_train.sh configs/rtdetr_riformer_s12_coco.py 8
#   mim train rtdetr_mm configs/rtdetr_riformer_s12_coco.py
#
# Only the backbone, the neck's in_channels and the backbone learning rate
# differ from RT-DETR-R50vd (encoder, decoder, losses, data pipeline and the
# 6x schedule are the official ones). The other RIFormer variants inherit
# this file and change the arch, its checkpoint and (m36/m48) the neck's
# in_channels. For inference, fold the token mixers away with
# tools/deploy/deploy_rtdetr.py (same outputs, faster backbone).
_base_ = [
    '_base_/models/rtdetr_r50vd.py',
    '_base_/datasets/coco_detection_rtdetr.py',
    '_base_/schedules/rtdetr_6x.py', '_base_/default_runtime.py'
]
model = dict(
    backbone=dict(
        _delete_=True,
        type='RIFormer',  # rtdetr_mm's wrapper of mmpretrain's RIFormer
        arch='s12',
        out_indices=(1, 2, 3),  # strides 8/16/32: 128/320/512 channels
        # the ImageNet training rate of every RIFormer variant (there is no
        # official detection recipe)
        drop_path_rate=0.1,
        frozen_stages=-1,
        norm_eval=False,  # GroupNorm only: nothing to keep in eval mode
        # official ImageNet-1k weights (mmpretrain classifier checkpoint,
        # training form); its head is dropped on loading, and the output
        # norms of strides 8/16 it lacks (norm2/norm4) start as identity
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://download.openmmlab.com/mmclassification/v1/'
            'riformer/riformer-s12_32xb128_in1k_20230406-6741ce71.pth',
            prefix='backbone.')),
    neck=dict(in_channels=[128, 320, 512]))

# RT-DETR's 0.1x learning rate for an ImageNet-pretrained backbone (the
# _base_ schedule's value, stated here as the knob to turn).
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.1)}))
