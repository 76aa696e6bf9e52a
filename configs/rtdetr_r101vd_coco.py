# RT-DETR-R101vd, 72 epochs on COCO (official rtdetr_r101vd_6x_coco.yml):
# 54.3 AP (v1). The neck is 384 wide with encoder FFN 2048 (the decoder stays
# 256 wide: its input_proj maps 384 -> 256); backbone lr 1e-6 (x0.01).
_base_ = './rtdetr_r50vd_coco.py'
model = dict(
    backbone=dict(
        depth=101,
        init_cfg=dict(
            checkpoint='https://github.com/lyuwenyu/storage/releases/'
            'download/v0.1/ResNet101_vd_ssld_pretrained_from_paddle.pth')),
    neck=dict(
        hidden_dim=384,
        encoder_layer=dict(ffn_cfg=dict(feedforward_channels=2048))))
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.01)}))
