# RT-DETR-R18vd, 72 epochs on COCO (official rtdetr_r18vd_6x_coco.yml):
# 46.5 AP (v1). 3 decoder layers, CSPRep expansion 0.5, trainable backbone
# BatchNorm (freeze_at=-1, freeze_norm=False).
_base_ = './rtdetr_r50vd_coco.py'
model = dict(
    # PResNetV1d = ResNetV1d + the projection shortcut PResNet-18/34 have in
    # stage 1 (see rtdetr_mm/models/backbones/presnet_vd.py)
    backbone=dict(
        type='PResNetV1d',
        depth=18,
        frozen_stages=-1,
        norm_cfg=dict(type='BN', requires_grad=True),
        norm_eval=False,
        init_cfg=dict(
            type='Pretrained',
            checkpoint='https://github.com/lyuwenyu/storage/releases/'
            'download/v0.1/ResNet18_vd_pretrained_from_paddle.pth')),
    neck=dict(in_channels=[128, 256, 512], expansion=0.5),
    decoder=dict(num_layers=3))
