# RT-DETR with a MobileNetV4-Conv-S backbone on the embedded ToyShapes set,
# sized for a CPU: the R18vd toy recipe with the backbone and the neck's
# in_channels swapped. Trained from scratch (no download here);
# configs/rtdetr_mobilenetv4_conv_small_coco.py loads timm's ImageNet weights
# and uses a lighter neck and decoder.
_base_ = './rtdetr_r18vd_toy.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='MobileNetV4',
        arch='conv_small',
        out_indices=(1, 2, 3)),
    neck=dict(in_channels=[64, 96, 128]))
