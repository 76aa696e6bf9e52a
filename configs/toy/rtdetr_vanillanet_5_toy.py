# RT-DETR with a VanillaNet-5 backbone on the embedded ToyShapes set: the
# RT-DETR-R18vd toy config with the backbone and the neck's in_channels
# swapped. Trained from scratch (nothing is downloaded here), so VanillaNet's
# deep-training schedule is on: act_learn goes 0 -> 1 over the first third of
# the epochs (official: 100 of 300), on the model and its EMA copy, and the
# trained model can be switched to the deploy form (switch_to_deploy).
# VanillaNet-5 is wide (4096 channels at stride 32; 5.2 GFLOPs per 224x224
# image deployed, more in the training form, vs 1.8 for ResNet-18): expect
# a slower toy run than R18's.
_base_ = './rtdetr_r18vd_toy.py'
model = dict(
    backbone=dict(
        _delete_=True,
        type='VanillaNet',
        arch='5',
        out_indices=(1, 2, 3),
        frozen_stages=-1,
        norm_eval=False,
        init_cfg=None),
    neck=dict(in_channels=[1024, 2048, 4096]))

# the deep-training schedule beside the base EMA hook
custom_hooks = _base_.custom_hooks + [
    dict(type='VanillaNetDeepTrainingHook', decay_epochs=2)
]
