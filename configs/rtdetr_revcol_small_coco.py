# RT-DETR with a RevCol-S backbone (8 reversible columns) on COCO, 72
# epochs: the RevCol-T config (reversible training,
# find_unused_parameters=False) with the arch, its official weights, drop
# path and the neck's in_channels changed.
_base_ = './rtdetr_revcol_tiny_coco.py'
model = dict(
    backbone=dict(
        arch='small',
        # stochastic depth of the official Cascade Mask R-CNN configs
        drop_path_rate=0.4,
        init_cfg=dict(checkpoint='https://github.com/megvii-research/RevCol/'
                      'releases/download/checkpoint/revcol_small_1k.pth')),
    neck=dict(in_channels=[128, 256, 512]))
