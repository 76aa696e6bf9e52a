# D-FINE-X (HGNetv2-B5), 80 epochs on COCO, stop epoch 72: 55.8 AP, 62 M
# parameters (official dfine_hgnetv2_x_coco.yml). The encoder is 384 wide,
# the decoder 256 (a 1x1 conv + BN projects each level); reg_scale 8.
# Official ema_restart_decay 0.9998 does not change its EMA (see
# StopAugmentationHook), so it is not set here.
_base_ = './dfine_hgnetv2_l_coco.py'
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(
            type='BatchRandomChoiceResize',
            scales=[480, 512, 544, 576, 608] + [640] * 3 +
            [672, 704, 736, 768, 800])
    ]),
    backbone=dict(
        arch='b5',
        init_cfg=dict(
            checkpoint='https://github.com/Peterande/storage/releases/'
            'download/dfinev1.0/PPHGNetV2_B5_stage1.pth')),
    neck=dict(
        hidden_dim=384,
        encoder_layer=dict(ffn_cfg=dict(feedforward_channels=2048))),
    bbox_head=dict(reg_scale=8.0))
# lr 2.5e-4, backbone 2.5e-6
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.01)}))
