# RT-DETR with a FasterNet-T0 backbone on the embedded ToyShapes set, sized
# for a CPU: the R18vd toy recipe with the backbone and the neck's
# in_channels swapped. Trained from scratch (no download here);
# configs/rtdetr_fasternet_t0_coco.py loads the official ImageNet weights.
_base_ = './rtdetr_r18vd_toy.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='FasterNet',
        arch='t0',
        out_indices=(1, 2, 3),
        drop_path_rate=0.0),
    neck=dict(in_channels=[80, 160, 320]))
