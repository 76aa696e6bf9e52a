# RT-DETR-R50vd-M (official rtdetr_r50vd_m_6x_coco.yml): 51.3 AP (v1).
# CSPRep expansion 0.5 and prediction from the 3rd of 6 decoder layers.
_base_ = './rtdetr_r50vd_coco.py'
model = dict(neck=dict(expansion=0.5), decoder=dict(eval_idx=2))
