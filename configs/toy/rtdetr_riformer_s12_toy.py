# RT-DETR with a RIFormer-S12 backbone on the embedded ToyShapes set, sized
# for a CPU: the README's main job.
#
#   python tools/train.py configs/toy/rtdetr_riformer_s12_toy.py
#
# The R18vd toy recipe with the backbone and the neck's in_channels swapped;
# trained from scratch (no download here), while
# configs/rtdetr_riformer_s12_coco.py loads the official ImageNet weights.
_base_ = './rtdetr_r18vd_toy.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='RIFormer',
        arch='s12',
        out_indices=(1, 2, 3),
        drop_path_rate=0.0),
    neck=dict(in_channels=[128, 320, 512]))
