# RT-DETR with a RIFormer-S12 backbone on the embedded ToyShapes set, sized
# for a CPU.
#
#   python tools/train.py configs/toy/rtdetr_riformer_s12_toy.py
#
# The R18vd toy recipe with the backbone and the neck's in_channels swapped;
# trained from scratch (no download here), while
# configs/rtdetr_riformer_s12_coco.py loads the official ImageNet weights.
# From scratch RIFormer learns slowly: its blocks mix no pixels (the token
# mixer is an affine map; only the downsampling convs see neighbours), so
# shapes must be learnt by the neck. Measured (seed 0, 300 iterations at
# 192 px, 11 minutes on a 2-core CPU): toy val bbox mAP 0.171, where R18vd
# reaches 0.274 and FasterNet-T0 0.514 after 600 iterations in the same
# time (the README's main job).
_base_ = './rtdetr_r18vd_toy.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='RIFormer',
        arch='s12',
        out_indices=(1, 2, 3),
        drop_path_rate=0.0),
    neck=dict(in_channels=[128, 320, 512]))
