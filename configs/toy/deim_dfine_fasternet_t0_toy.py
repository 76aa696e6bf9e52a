# The DEIM recipe on the toy D-FINE (configs/toy/dfine_fasternet_t0_toy.py):
# its model with the recipe of configs/toy/deim_rtdetr_fasternet_t0_toy.py
# (Dense O2O stages [1, 5, 9] of 10 epochs, MAL, FlatCosine).
#
#   python tools/train.py configs/toy/deim_dfine_fasternet_t0_toy.py
_base_ = './deim_rtdetr_fasternet_t0_toy.py'
# the D-FINE changes of configs/toy/dfine_fasternet_t0_toy.py
model = dict(
    type='DFINE',
    neck=dict(fusion_block='gelan', downsample='scdown', lateral_act=False),
    decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_points=[3, 6, 3]))),
    bbox_head=dict(type='DFINEHead', reg_max=32, reg_scale=4.0),
    dn_cfg=dict(abs_box_size=True))
