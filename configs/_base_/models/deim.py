# DEIM's model changes (official DEIM configs/base/rt_deim.yml for
# RT-DETRv2, configs/base/deim.yml for D-FINE), as names a config picks; a
# mixin like datasets/coco_detection_deim.py (it defines no key of the
# model configs, so it sits beside them in `_base_`):
#
#   _base_ = ['./rtdetrv2_r18vd_coco.py', './_base_/models/deim.py', ...]
#   model = dict(backbone=_base_.deim_trainable_backbone,
#                decoder=_base_.deim_rtdetrv2_decoder,
#                bbox_head=_base_.deim_rtdetrv2_head)
#
# SiLU in the decoder FFNs and every box MLP (activation: silu, mlp_act:
# silu; D-FINE's quality MLP too), RT-DETRv2's query-position MLP "as_reg"
# (4 -> dim -> dim -> dim), the Matchability-Aware Loss (gamma 1.5, weight 1)
# in place of the varifocal loss, and trainable backbone stages and
# BatchNorms (freeze_at: -1, freeze_norm: False).
deim_mlp_act = dict(type='SiLU')
deim_loss_cls = dict(
    _delete_=True, type='MatchabilityAwareLoss', gamma=1.5, loss_weight=1.0)
deim_trainable_backbone = dict(
    frozen_stages=-1,
    norm_cfg=dict(type='BN', requires_grad=True),
    norm_eval=False)
deim_rtdetrv2_decoder = dict(
    query_pos_method='as_reg',
    mlp_act_cfg=deim_mlp_act,
    layer_cfg=dict(ffn_cfg=dict(act_cfg=deim_mlp_act)))
deim_rtdetrv2_head = dict(mlp_act_cfg=deim_mlp_act, loss_cls=deim_loss_cls)
deim_dfine_decoder = dict(
    mlp_act_cfg=deim_mlp_act,
    layer_cfg=dict(ffn_cfg=dict(act_cfg=deim_mlp_act)))
deim_dfine_head = dict(
    mlp_act_cfg=deim_mlp_act,
    lqe_cfg=dict(act_cfg=deim_mlp_act),
    loss_cls=deim_loss_cls)
# DEIM-RT-DETRv2's batch sizes (collate base_size 640, base_size_repeat 3,
# every size, R18 included) until the last stage
deim_rtdetrv2_multi_scale = [
    dict(
        type='BatchRandomChoiceResize',
        scales=[480, 512, 544, 576, 608] + [640] * 3 +
        [672, 704, 736, 768, 800])
]
