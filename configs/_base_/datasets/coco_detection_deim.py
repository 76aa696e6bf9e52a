# DEIM's "Dense O2O" augmentation on COCO 2017 (official DEIM
# configs/base/deim.yml, rt_deim.yml): RT-DETR's augmentation
# (coco_detection_rtdetr.py: the same transforms and values) plus Mosaic and
# a batch MixUp, switched in four stages by the official policy
# `epoch: [e0, e1, e2]` (DEIM-D-FINE-L/X [4, 29, 50], M [4, 49, 90],
# S [4, 64, 120], N [4, 78, 148] (N: no multi-scale at all);
# DEIM-RT-DETRv2-R18/R34 [4, 64, 117], R50/R50-M/R101 [4, 34, 58]):
#
#   stage 1, epochs [0, e0):   none of them            train_pipeline_stage1
#   stage 2, epochs [e0, e1):  per sample Mosaic (probability 0.5) or the
#                              zoom-out and IoU crop, never both, and the
#                              photometric distortion either way; per batch
#                              MixUp (probability 0.5)  train_pipeline_stage2
#   stage 3, epochs [e1, e2):  RT-DETR's: photometric, zoom-out, IoU crop
#                                                      train_pipeline_stage3
#   stage 4, epochs [e2, end): none of them, and no multi-scale resize
#                                                      train_pipeline_stage4
#
# A mixin: it defines only new names, so a config adds it to any COCO
# config's bases (keys shared by two bases are an error in mmengine) and
# uses them. The training set becomes a MultiImageMixDataset (Mosaic draws
# three more images) whose COCO dataset only loads; the stage pipelines run
# after it. For policy [4, 29, 50], the model's multi-scale batch resize
# kept until e2:
#
#   _base_ = ['./dfine_hgnetv2_l_coco.py',
#             './_base_/datasets/coco_detection_deim.py']
#   train_dataloader = dict(dataset=_base_.deim_train_dataset)  # stage 1
#   multi_scale = _base_.model.data_preprocessor.batch_augments
#   default_hooks = dict(
#       augmentation_schedule=dict(
#           _delete_=True,  # the stages replace D-FINE's stop epoch hook
#           type='AugmentationStageHook',
#           stages=[
#               dict(epoch=4, pipeline=_base_.train_pipeline_stage2,
#                    batch_augments=[_base_.deim_batch_mixup,
#                                    *multi_scale]),
#               dict(epoch=29, pipeline=_base_.train_pipeline_stage3,
#                    batch_augments=multi_scale),
#               dict(epoch=50, pipeline=_base_.train_pipeline_stage4,
#                    batch_augments=None)]))
deim_image_size = (640, 640)

# what the wrapped dataset does for every sample and for Mosaic's extra
# images: the official Mosaic mixes loaded, not yet augmented images
deim_load_pipeline = [
    dict(type='LoadImageFromFile', backend_args=None),
    dict(type='LoadAnnotations', with_bbox=True),
]
# RandomPhotometricDistort(p=0.5), as coco_detection_rtdetr.py
deim_photometric = dict(
    type='PhotoMetricDistortion',
    brightness_delta=32,
    contrast_range=(0.5, 1.5),
    saturation_range=(0.5, 1.5),
    hue_delta=18)
# RandomZoomOut(fill=0): canvas 1-4x the image, probability 0.5
deim_zoom_out = dict(
    type='Expand', mean=[0, 0, 0], to_rgb=False, ratio_range=(1, 4), prob=0.5)
# RandomIoUCrop(p=0.8)
deim_iou_crop = dict(
    type='RandomApply',
    transforms=dict(
        type='MinIoURandomCrop',
        min_ious=(0.1, 0.3, 0.5, 0.7, 0.9),
        min_crop_size=0.3),
    prob=0.8)
# Mosaic(output_size=320, rotation_range=10, translation_range=[0.1, 0.1],
# scaling_range=[0.5, 1.5], fill_value=0, use_cache=False): the sample and
# 3 random images, each resized to short side 320 and pasted at the corners
# of a 2x2 grid, then a random affine of the grid about its centre. mmdet's
# Mosaic fits each image's long side into a 320x320 tile against the centre
# of a 640x640 canvas (centre fixed: no image is cut), so non-square images
# come out smaller than DEIM's, padded with 0; CenteredRandomAffine is
# mmdet's RandomAffine about the centre, as torchvision's.
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
# SanitizeBoundingBoxes(min_size=1), RandomHorizontalFlip, Resize(640),
# SanitizeBoundingBoxes(min_size=1): every stage ends with them
deim_finish = [
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='RandomFlip', prob=0.5),
    dict(type='Resize', scale=deim_image_size, keep_ratio=False),
    dict(type='FilterAnnotations', min_gt_bbox_wh=(1, 1), keep_empty=False),
    dict(type='PackDetInputs')
]
train_pipeline_stage1 = deim_finish
# mosaic_prob: 0.5; a sample with Mosaic gets no zoom-out or IoU crop
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
# collate_fn mixup_prob: 0.5, mixup_epochs: [e0, e1], before the multi-scale
# resize (as the official collate function): first in batch_augments
deim_batch_mixup = dict(type='BatchMixUp', prob=0.5, ratio_range=(0.45, 0.55))

# train_dataloader = dict(dataset=deim_train_dataset): replaces the COCO
# training set of coco_detection_rtdetr.py (same files and filter)
deim_train_dataset = dict(
    _delete_=True,
    type='MultiImageMixDataset',
    dataset=dict(
        type='CocoDataset',
        data_root='data/coco/',
        ann_file='annotations/instances_train2017.json',
        data_prefix=dict(img='train2017/'),
        filter_cfg=dict(filter_empty_gt=False, min_size=1),
        pipeline=deim_load_pipeline,
        backend_args=None),
    pipeline=train_pipeline_stage1)
