# D-FINE-S (HGNetv2-B0), 132 epochs on COCO, stop epoch 120: 48.5 AP, 10 M
# parameters (official dfine_hgnetv2_s_coco.yml). 3 decoder layers.
_base_ = './dfine_hgnetv2_m_coco.py'
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(
            type='BatchRandomChoiceResize',
            scales=[480, 512, 544, 576, 608] + [640] * 20 +
            [672, 704, 736, 768, 800])
    ]),
    backbone=dict(
        arch='b0',
        init_cfg=dict(
            checkpoint='https://github.com/Peterande/storage/releases/'
            'download/dfinev1.0/PPHGNetV2_B0_stage1.pth')),
    neck=dict(in_channels=[256, 512, 1024], expansion=0.5, depth_mult=0.34),
    decoder=dict(num_layers=3))
# lr 2e-4, backbone 1e-4
optim_wrapper = dict(
    paramwise_cfg=dict(custom_keys={'backbone': dict(lr_mult=0.5)}))
