# D-FINE-L (HGNetv2-B4), 80 epochs on COCO, strong augmentation and
# multi-scale stop at epoch 72: 54.0 AP, 31 M parameters (official
# dfine_hgnetv2_l_coco.yml; checkpoint dfine_l_coco.pth, see
# docs/official_weights.md). 4 GPUs x 8 images, AMP (`--amp`).
_base_ = [
    './_base_/models/dfine_hgnetv2.py',
    './_base_/datasets/coco_detection_rtdetr.py',
    './_base_/schedules/dfine.py', './_base_/default_runtime.py'
]
train_dataloader = dict(batch_size=8)
val_dataloader = dict(batch_size=16)
test_dataloader = val_dataloader
# from epoch 72 (0-based) on: no photometric distortion, zoom-out, IoU crop
# or multi-scale (the official stop_epoch)
default_hooks = dict(
    augmentation_schedule=dict(type='StopAugmentationHook', switch_epoch=72))
# the official runtime synchronises BatchNorm statistics across GPUs
sync_bn = 'torch'
