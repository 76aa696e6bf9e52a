# RT-DETR with a RevCol-S backbone (8 reversible columns; Cai et al.,
# ICLR 2023) on COCO, 72 epochs. Only the backbone, the neck's in_channels
# and the DDP setting differ from RT-DETR-R50vd.
_base_ = './rtdetr_r50vd_coco.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='RevCol',
        arch='small',
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        # stochastic depth of the official Cascade Mask R-CNN configs
        drop_path_rate=0.4,
        # reversible columns: training memory nearly flat in the columns
        save_memory=True,
        # official ImageNet classification weights; their cls_blocks and
        # decoder_blocks heads are ignored on loading
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/megvii-research/RevCol/'
            'releases/download/checkpoint/revcol_small_1k.pth')),
    neck=dict(in_channels=[128, 256, 512]))
# The backbone learning rate stays at RT-DETR's 0.1x (the _base_ schedule's
# paramwise_cfg custom_keys['backbone']).

# The reversible columns use every parameter in each step; DDP must run with
# find_unused_parameters=False (the official reversible function fails with
# True; ours works with both, False is also the faster setting).
find_unused_parameters = False
