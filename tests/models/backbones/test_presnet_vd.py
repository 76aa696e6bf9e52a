import pytest
import torch
from mmdet.models.backbones import ResNetV1d
from mmdet.registry import MODELS
from mmengine.config import Config

from rtdetr_mm.models.backbones.presnet_vd import OFFICIAL_IMAGENET_WEIGHTS
from rtdetr_mm.models.utils.rtdetr_official_keys import mm_to_official
from ..._utils import REPO


def test_r18_has_stage1_projection_shortcut():
    model = MODELS.build(
        dict(
            type='PResNetV1d',
            depth=18,
            base_channels=8,
            stem_channels=8,
            out_indices=(1, 2, 3)))
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


def _randomized(model):
    with torch.no_grad():
        for tensor in model.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(torch.randn_like(tensor))
    return model.state_dict()


@pytest.mark.parametrize('depth', [18, 50])
def test_init_cfg_converts_official_imagenet_weights(tmp_path, depth):
    """The official PResNet-vd ImageNet layout loads without a converter run,
    strictly (a missing key is an error)."""
    kwargs = dict(depth=depth, base_channels=8, stem_channels=8)
    expected = _randomized(MODELS.build(dict(type='PResNetV1d', **kwargs)))
    official = {
        k[len('backbone.'):]: v
        for k, v in mm_to_official({
            f'backbone.{k}': v
            for k, v in expected.items()
        }).items()
    }
    assert 'res_layers.0.blocks.0.branch2a.conv.weight' in official
    official = {
        k: v
        for k, v in official.items() if not k.endswith('num_batches_tracked')
    }
    path = str(tmp_path / 'ResNet_vd_pretrained_from_paddle.pth')
    torch.save(official, path)
    model = MODELS.build(
        dict(
            type='PResNetV1d',
            **kwargs,
            init_cfg=dict(type='Pretrained', checkpoint=path)))
    model.init_weights()
    for key, value in model.state_dict().items():
        if not key.endswith('num_batches_tracked'):
            assert torch.equal(value, expected[key]), key
    del official['conv1.conv1_1.conv.weight']
    torch.save(official, path)
    with pytest.raises(ValueError, match=r'1 missing key\(s\): stem.0.weight'):
        MODELS.build(
            dict(
                type='PResNetV1d',
                **kwargs,
                init_cfg=dict(type='Pretrained',
                              checkpoint=path))).init_weights()


@pytest.mark.parametrize('name,depth', [('r18vd', 18), ('r34vd', 34),
                                        ('r50vd', 50), ('r50vd_m', 50),
                                        ('r101vd', 101)])
def test_coco_configs_start_from_official_imagenet_weights(name, depth):
    cfg = Config.fromfile(REPO / 'configs' / f'rtdetr_{name}_coco.py')
    backbone = cfg.model.backbone
    assert backbone.type == 'PResNetV1d' and backbone.depth == depth
    assert backbone.init_cfg == dict(
        type='Pretrained', checkpoint=OFFICIAL_IMAGENET_WEIGHTS[depth])


def test_toy_config_downloads_nothing():
    cfg = Config.fromfile(REPO / 'configs' / 'toy' / 'rtdetr_r18vd_toy.py')
    assert cfg.model.backbone.init_cfg is None
