# D-FINE-M (HGNetv2-B2), 132 epochs on COCO, stop epoch 120: 52.3 AP, 19 M
# parameters (official dfine_hgnetv2_m_coco.yml). Trainable backbone norms,
# LAB blocks; 4 decoder layers.
_base_ = './dfine_hgnetv2_l_coco.py'
model = dict(
    data_preprocessor=dict(batch_augments=[
        dict(
            type='BatchRandomChoiceResize',
            scales=[480, 512, 544, 576, 608] + [640] * 6 +
            [672, 704, 736, 768, 800])
    ]),
    backbone=dict(
        arch='b2',
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=dict(
            checkpoint='https://github.com/Peterande/storage/releases/'
            'download/dfinev1.0/PPHGNetV2_B2_stage1.pth')),
    neck=dict(in_channels=[384, 768, 1536], depth_mult=0.67),
    decoder=dict(num_layers=4))
max_epochs = 132
train_cfg = dict(max_epochs=max_epochs)
default_hooks = dict(augmentation_schedule=dict(switch_epoch=120))
# lr 2e-4, backbone 2e-5, weight decay 1e-4, none on encoder/decoder norms
# and biases
optim_wrapper = dict(
    optimizer=dict(lr=2e-4, weight_decay=1e-4),
    paramwise_cfg=dict(
        custom_keys={'backbone': dict(lr_mult=0.1)}, bias_decay_mult=0.0))
