# RT-DETR with a RevCol-XL backbone (8 reversible columns) on COCO, 72
# epochs: the RevCol-T config with the arch, drop path and the neck's
# in_channels changed.
_base_ = './rtdetr_revcol_tiny_coco.py'
model = dict(
    backbone=dict(
        arch='xlarge',
        # as the official RevCol-L Cascade Mask R-CNN config
        drop_path_rate=0.5,
        # no RevCol-XL weights are released (megvii-research/RevCol
        # publishes T/S/B/L and H only): trains from scratch unless
        # init_cfg points at your own ImageNet weights
        init_cfg=None),
    neck=dict(in_channels=[448, 896, 1792]))
