# COCO 2017 with the official RT-DETR augmentation
# (rtdetr_pytorch/configs/rtdetr/include/dataloader.yml).
dataset_type = 'CocoDataset'
data_root = 'data/coco/'
backend_args = None
image_size = (640, 640)

train_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='LoadAnnotations', with_bbox=True),
    # RandomPhotometricDistort(p=0.5): brightness/contrast/saturation/hue,
    # each applied with probability 0.5 (torchvision's hue range is +-0.05 of
    # a turn ~ 18 of OpenCV's 180-degree hue; brightness is +-12.5% there,
    # an additive +-32 here).
    dict(
        type='PhotoMetricDistortion',
        brightness_delta=32,
        contrast_range=(0.5, 1.5),
        saturation_range=(0.5, 1.5),
        hue_delta=18),
    # RandomZoomOut(fill=0): canvas 1-4x the image, probability 0.5
    dict(
        type='Expand',
        mean=[0, 0, 0],
        to_rgb=False,
        ratio_range=(1, 4),
        prob=0.5),
    # RandomIoUCrop(p=0.8): min IoU from {0.1, 0.3, 0.5, 0.7, 0.9} or no
    # crop, crop side >= 0.3 of the image
    dict(
        type='RandomApply',
        transforms=dict(
            type='MinIoURandomCrop',
            min_ious=(0.1, 0.3, 0.5, 0.7, 0.9),
            min_crop_size=0.3),
        prob=0.8),
    # SanitizeBoundingBox(min_size=1); images left without boxes are kept
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs')
]
# the multi-scale [480..800] training sizes are a batch augment of the
# model's data_preprocessor (configs/_base_/models/rtdetr_r50vd.py)
test_pipeline = [
    dict(type='LoadImageFromFile', backend_args=backend_args),
    dict(type='Resize', scale=image_size, keep_ratio=False),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(
        type='PackDetInputs',
        meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape',
                   'scale_factor'))
]

# official: 4 images per GPU on 4 GPUs (16 in total), shuffled, drop_last
train_dataloader = dict(
    batch_size=4,
    num_workers=4,
    persistent_workers=True,
    drop_last=True,
    sampler=dict(type='DefaultSampler', shuffle=True),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=1),
        pipeline=train_pipeline,
        backend_args=backend_args))
val_dataloader = dict(
    batch_size=8,
    num_workers=4,
    persistent_workers=True,
    drop_last=False,
    sampler=dict(type='DefaultSampler', shuffle=False),
    dataset=dict(
        type=dataset_type,
        data_root=data_root,
        ann_file='annotations/instances_val2017.json',
        data_prefix=dict(img='val2017/'),
        test_mode=True,
        pipeline=test_pipeline,
        backend_args=backend_args))
test_dataloader = val_dataloader

val_evaluator = dict(
    type='CocoMetric',
    ann_file=data_root + 'annotations/instances_val2017.json',
    metric='bbox',
    format_only=False,
    backend_args=backend_args)
test_evaluator = val_evaluator
