# RT-DETR with a MobileNetV4-Hybrid-L backbone (timm, 37.8M params with its
# classifier, 84.0 ImageNet top-1) on COCO, 72 epochs: the Conv-L config
# (R50vd-sized neck and decoder) with the arch and its checkpoint changed.
_base_ = './rtdetr_mobilenetv4_conv_large_coco.py'
model = dict(
    backbone=dict(
        arch='hybrid_large',
        init_cfg=dict(
            checkpoint='timm://mobilenetv4_hybrid_large.ix_e600_r384_in1k')))
