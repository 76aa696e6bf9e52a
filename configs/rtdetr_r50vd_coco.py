# RT-DETR-R50vd, 72 epochs on COCO (official rtdetr_r50vd_6x_coco.yml):
# 53.1 AP (v1). Weights: docs/official_weights.md.
_base_ = [
    '_base_/models/rtdetr_r50vd.py',
    '_base_/datasets/coco_detection_rtdetr.py',
    '_base_/schedules/rtdetr_6x.py', '_base_/default_runtime.py'
]
