# RT-DETR with a RevCol-L backbone (8 reversible columns) on COCO, 72
# epochs: the RevCol-T config (reversible training,
# find_unused_parameters=False) with the arch, its official weights, drop
# path and the neck's in_channels changed.
_base_ = './rtdetr_revcol_tiny_coco.py'
model = dict(
    backbone=dict(
        arch='large',
        # stochastic depth of the official Cascade Mask R-CNN configs
        drop_path_rate=0.5,
        init_cfg=dict(checkpoint='https://github.com/megvii-research/RevCol/'
                      'releases/download/checkpoint/revcol_large_22k.pth')),
    neck=dict(in_channels=[256, 512, 1024]))
