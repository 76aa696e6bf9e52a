# DEIM's four augmentation stages on the embedded ToyShapes set, sized as
# the toy configs (192 px training images, so 96 px Mosaic tiles): the
# toy counterpart of coco_detection_deim.py (see there for the stages, the
# official values and how mmdet's transforms differ from DEIM's). ToyShapes
# images are square, so mmdet's Mosaic here makes DEIM's 2x2 grid exactly.
#
# A mixin (new names only) for a toy config's bases; e.g. for a 10-epoch
# policy [1, 5, 9] (epoch 0 plain; 1-4 Mosaic or zoom-out/IoU crop, and
# MixUp; 5-8 RT-DETR's augmentation; 9 plain, at 192 px):
#
#   _base_ = ['./dfine_fasternet_t0_toy.py',
#             '../_base_/datasets/toy_shapes_deim.py']
#   train_dataloader = dict(dataset=_base_.deim_train_dataset)  # stage 1
#   multi_scale = _base_.deim_multi_scale
#   model = dict(data_preprocessor=dict(batch_augments=multi_scale))
#   default_hooks = dict(
#       augmentation_schedule=dict(
#           type='AugmentationStageHook',
#           stages=[
#               dict(epoch=1, pipeline=_base_.train_pipeline_stage2,
#                    batch_augments=[_base_.deim_batch_mixup,
#                                    *multi_scale]),
#               dict(epoch=5, pipeline=_base_.train_pipeline_stage3,
#                    batch_augments=multi_scale),
#               dict(epoch=9, pipeline=_base_.train_pipeline_stage4,
#                    batch_augments=None)]))
deim_image_size = (192, 192)

deim_load_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
]
deim_photometric = dict(
    type='PhotoMetricDistortion',
    brightness_delta=32,
    contrast_range=(0.5, 1.5),
    saturation_range=(0.5, 1.5),
    hue_delta=18)
deim_zoom_out = dict(
    type='Expand', mean=[0, 0, 0], to_rgb=False, ratio_range=(1, 4), prob=0.5)
deim_iou_crop = dict(
    type='RandomApply',
    transforms=dict(
        type='MinIoURandomCrop',
        min_ious=(0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size=0.3),
    prob=0.8)
deim_mosaic = [
    dict(
        type='Mosaic',
        img_scale=(deim_image_size[1] // 2, deim_image_size[0] // 2),
        center_ratio_range=(1.0, 1.0),
        pad_val=0,
        prob=1.0),
    dict(
        type='CenteredRandomAffine',
        max_rotate_degree=10,
        max_translate_ratio=0.1,
        scaling_ratio_range=(0.5, 1.5),
        max_shear_degree=0,
        border_val=(0, 0, 0)),
]
deim_finish = [
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=deim_image_size, keep_ratio=False),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs')
]
train_pipeline_stage1 = deim_finish
train_pipeline_stage2 = [
    dict(
        type='MultiImageRandomChoice',
        transforms=[[*deim_mosaic, deim_photometric],
                    [deim_photometric, deim_zoom_out, deim_iou_crop]],
        prob=[0.5, 0.5]),
    *deim_finish,
]
train_pipeline_stage3 = [
    deim_photometric, deim_zoom_out, deim_iou_crop, *deim_finish
]
train_pipeline_stage4 = deim_finish
deim_batch_mixup = dict(type='BatchMixUp', prob=0.5, ratio_range=(0.45, 0.55))
# DEIM's multi-scale at 192 px (its generate_scales(192, 1): 0.75x-1.25x in
# steps of 32, 192 drawn 2 times in 5); the toy model configs train without
# one
deim_multi_scale = [
    dict(type='BatchRandomChoiceResize', scales=[128, 160, 192, 192, 224])
]

# train_dataloader = dict(dataset=deim_train_dataset): replaces the training
# set of toy_shapes.py (same files and filter)
deim_train_dataset = dict(
    _delete_=True,
    type='MultiImageMixDataset',
    dataset=dict(
        type='ToyShapesDataset',
        data_root='data/toy_shapes/',
        ann_file='annotations/instances_train.json',
        data_prefix=dict(img='train/'),
        filter_cfg=dict(filter_empty_gt=True, min_size=1),
        pipeline=deim_load_pipeline,
        backend_args=None),
    pipeline=train_pipeline_stage1)
