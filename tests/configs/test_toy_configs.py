"""Every toy config: an RT-DETR or D-FINE trained from scratch whose
backbone feeds its neck (the backbone-specific toy settings are tested
beside each backbone)."""
from pathlib import Path

import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

TOY_CONFIGS = sorted(
    (Path(__file__).resolve().parents[2] / 'configs' / 'toy').glob('*.py'))


def test_every_backbone_has_a_toy_config():
    backbones = {
        Config.fromfile(path).model.backbone.type
        for path in TOY_CONFIGS
    }
    assert backbones == {
        'PResNetV1d', 'RIFormer', 'MobileNetV4', 'RevCol', 'VanillaNet',
        'FasterNet'
    }


@pytest.mark.parametrize('path', TOY_CONFIGS, ids=lambda path: path.stem)
def test_toy_config_backbone_feeds_neck(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type in ('RTDETR', 'DFINE')
    assert cfg.model.backbone.get('init_cfg') is None  # no download
    backbone, neck = MODELS.build(cfg.model.backbone), MODELS.build(
        cfg.model.neck)
    backbone.eval(), neck.eval()  # mmdet's ResNet.train returns None
    with torch.no_grad():
        features = backbone(torch.rand(1, 3, 64, 64))
        outs = neck(features)
    assert [f.shape[1] for f in features] == cfg.model.neck.in_channels
    assert [tuple(out.shape[-2:]) for out in outs] == [(8, 8), (4, 4), (2, 2)]
