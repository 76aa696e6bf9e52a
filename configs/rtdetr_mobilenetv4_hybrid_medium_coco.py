# RT-DETR with a MobileNetV4-Hybrid-M backbone (timm, 11.1M params with its
# classifier, 81.4 ImageNet top-1; Mobile-MQA attention in stages 3-4) on
# COCO, 72 epochs: the Conv-M config (R18vd-sized neck and decoder) with the
# arch and its checkpoint changed; the channels are the same.
_base_ = './rtdetr_mobilenetv4_conv_medium_coco.py'
model = dict(
    backbone=dict(
        arch='hybrid_medium',
        init_cfg=dict(
            checkpoint='timm://mobilenetv4_hybrid_medium.ix_e550_r256_in1k')))
