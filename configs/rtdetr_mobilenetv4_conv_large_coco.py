# RT-DETR with a MobileNetV4-Conv-L backbone (timm, 32.6M params with its
# classifier, 83.0 ImageNet top-1) on COCO, 72 epochs. The Conv-M config
# with the RT-DETR-R50vd neck and decoder (CSPRep expansion 1.0, 6 decoder
# layers): this backbone is about as accurate on ImageNet as the distilled
# ResNet-50-vd RT-DETR-R50 starts from, and its trunk (29.6M params) is
# larger than ResNet-50's (23.5M), so it gets the neck and decoder RT-DETR
# pairs with that. The Hybrid-L config inherits this file.
_base_ = './rtdetr_mobilenetv4_conv_medium_coco.py'
model = dict(
    backbone=dict(
        arch='conv_large',
        init_cfg=dict(
            checkpoint='timm://mobilenetv4_conv_large.e600_r384_in1k')),
    neck=dict(in_channels=[96, 192, 512], expansion=1.0),
    decoder=dict(num_layers=6))
