# RT-DETR with a RevCol-T backbone (4 reversible columns) on the embedded
# ToyShapes set, sized for a CPU: the R18vd toy recipe with the backbone and
# the neck's in_channels swapped. Trained from scratch (no download here);
# configs/rtdetr_revcol_tiny_coco.py loads the official ImageNet weights.
_base_ = './rtdetr_r18vd_toy.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='RevCol',
        arch='tiny',
        out_indices=(1, 2, 3),
        drop_path_rate=0.1,
        save_memory=True),
    neck=dict(in_channels=[128, 256, 512]))

# The reversible columns use every parameter in each step; DDP must run with
# find_unused_parameters=False (the official reversible function fails with
# True; ours works with both, False is also the faster setting).
find_unused_parameters = False
