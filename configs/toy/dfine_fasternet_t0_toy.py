# D-FINE with a FasterNet-T0 backbone on the embedded ToyShapes set: the
# README's RT-DETR main job (configs/toy/rtdetr_fasternet_t0_toy.py: same
# backbone, widths, queries, schedule and seed) with D-FINE's CCFM blocks,
# decoder (per-level points, gate, FDR) and head (LQE, FGL and DDF losses),
# so the two compare after the same iterations.
#
#   python tools/train.py configs/toy/dfine_fasternet_t0_toy.py
_base_ = './rtdetr_fasternet_t0_toy.py'
model = dict(
    type='DFINE',
    neck=dict(fusion_block='gelan', downsample='scdown', lateral_act=False),
    decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_points=[3, 6, 3]))),
    bbox_head=dict(type='DFINEHead', reg_max=32, reg_scale=4.0),
    dn_cfg=dict(abs_box_size=True))
