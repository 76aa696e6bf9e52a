# RT-DETR-R34vd, 72 epochs on COCO (official rtdetr_r34vd_6x_coco.yml):
# 48.9 AP (v1). 4 decoder layers, CSPRep expansion 0.5.
_base_ = './rtdetr_r18vd_coco.py'
model = dict(
    backbone=dict(
        depth=34,
        init_cfg=dict(
            checkpoint='https://github.com/lyuwenyu/storage/releases/'
            'download/v0.1/ResNet34_vd_pretrained_from_paddle.pth')),
    decoder=dict(num_layers=4))
