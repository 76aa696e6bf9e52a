# RT-DETR with a RevCol-XL backbone (8 reversible columns; Cai et al.,
# ICLR 2023) on COCO, 72 epochs. Only the backbone, the neck's in_channels
# and the DDP setting differ from RT-DETR-R50vd.
_base_ = './rtdetr_r50vd_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='RevCol',
        arch='xlarge',
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        # as the official RevCol-L Cascade Mask R-CNN config
        drop_path_rate=0.5,
        # reversible columns: training memory nearly flat in the columns
        save_memory=True,
        # no RevCol-XL weights are released (megvii-research/RevCol
        # publishes T/S/B/L and H only): trains from scratch unless
        # init_cfg points at your own ImageNet weights
        init_cfg=None),
    neck=dict(in_channels=[448, 896, 1792]))
# The backbone learning rate stays at RT-DETR's 0.1x (the _base_ schedule's
# paramwise_cfg custom_keys['backbone']).

# The reversible columns use every parameter in each step; DDP must run with
# find_unused_parameters=False (the official reversible function fails with
# True; ours works with both, False is also the faster setting).
find_unused_parameters = False
