# RT-DETR with a RIFormer-S24 backbone (21.4M params, 80.3 ImageNet top-1)
# on COCO, 72 epochs: the RIFormer-S12 config with the arch and its
# official ImageNet-1k checkpoint changed (same stage widths, same neck).
_base_ = './rtdetr_riformer_s12_coco.py'
model = dict(
    backbone=dict(
        arch='s24',
        init_cfg=dict(
            checkpoint='https://download.openmmlab.com/mmclassification/v1/'
            'riformer/riformer-s24_32xb128_in1k_20230406-fdab072a.pth')))
