import torch

from mmdet.models.backbones import ResNetV1d
from mmdet.registry import MODELS


def test_r18_has_stage1_projection_shortcut():
    model = MODELS.build(dict(type='PResNetV1d', depth=18, base_channels=8,
                              stem_channels=8, out_indices=(1, 2, 3)))
    keys = model.state_dict().keys()
    assert 'layer1.0.downsample.1.weight' in keys
    assert 'layer1.0.downsample.2.running_var' in keys
    assert 'layer1.1.downsample.1.weight' not in keys
    model.eval()  # mmdet's ResNet.train() returns None
    outs = model(torch.rand(1, 3, 64, 96))
    assert [tuple(o.shape) for o in outs] == [(1, 16, 8, 12), (1, 32, 4, 6),
                                            (1, 64, 2, 3)]


def test_r50_layout_equals_resnetv1d():
    kwargs = dict(depth=50, base_channels=8, stem_channels=8)
    ours = MODELS.build(dict(type='PResNetV1d', **kwargs))
    assert ours.state_dict().keys() == ResNetV1d(**kwargs).state_dict().keys()
