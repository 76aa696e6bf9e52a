"""The D-FINE COCO configs carry the official per-size recipe."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config

from .._utils import CONFIG_DIR
from ..models.backbones.test_backbone_contract import FAMILIES

# size: backbone arch, decoder layers, reg_scale, published params (M),
# epochs, stop epoch, lr, backbone lr, images per GPU (x4 GPUs), 640 repeats
# in the multi-scale list (None: no multi-scale)
RECIPES = dict(
    n=('b0', 3, 4.0, 4, 160, 148, 8e-4, 4e-4, 32, None),
    s=('b0', 3, 4.0, 10, 132, 120, 2e-4, 1e-4, 8, 20),
    m=('b2', 4, 4.0, 19, 132, 120, 2e-4, 2e-5, 8, 6),
    l=('b4', 6, 4.0, 31, 80, 72, 2.5e-4, 1.25e-5, 8, 4),
    x=('b5', 6, 8.0, 62, 80, 72, 2.5e-4, 2.5e-6, 8, 3))


@pytest.mark.parametrize('size', list(RECIPES))
def test_dfine_config_follows_the_official_recipe(size):
    (arch, layers, reg_scale, params, epochs, stop, lr, backbone_lr, batch,
     repeats) = RECIPES[size]
    cfg = Config.fromfile(CONFIG_DIR / f'dfine_hgnetv2_{size}_coco.py')
    model = cfg.model
    assert model.type == 'DFINE' and model.backbone.arch == arch
    assert model.backbone.init_cfg.checkpoint.endswith(
        f'PPHGNetV2_{arch.upper()}_stage1.pth')
    assert model.decoder.num_layers == layers
    assert model.bbox_head.reg_scale == reg_scale
    assert model.dn_cfg.abs_box_size is True
    frozen_norms = size in ('l', 'x')
    assert (model.backbone.frozen_stages == 0) is frozen_norms
    assert (
        model.backbone.norm_cfg.type == 'FrozenBatchNorm2d') is frozen_norms
    assert cfg.train_cfg.max_epochs == epochs
    assert cfg.default_hooks.augmentation_schedule.switch_epoch == stop
    optimizer = cfg.optim_wrapper.optimizer
    lr_mult = cfg.optim_wrapper.paramwise_cfg.custom_keys.backbone.lr_mult
    assert optimizer.lr == lr
    assert optimizer.lr * lr_mult == pytest.approx(backbone_lr)
    # encoder/decoder biases without weight decay for N/S/M only
    assert ('bias_decay_mult' in cfg.optim_wrapper.paramwise_cfg) is \
        (not frozen_norms)
    assert cfg.train_dataloader.batch_size == batch
    augments = model.data_preprocessor.batch_augments
    if repeats is None:
        assert augments is None
    else:
        assert augments[0].scales.count(640) == repeats
        assert len(augments[0].scales) == repeats + 10
    with torch.device('meta'):
        detector = MODELS.build(model)
    num_params = sum(p.numel() for p in detector.parameters()) / 1e6
    # the paper rounds loosely (N 3.78 -> 4, M 19.59 -> 19); the counts
    # equal the official models' exactly (docs/official_weights.md)
    assert abs(num_params - params) < 0.8
    assert list(detector.backbone.out_channels) == model.neck.in_channels


FAMILY_CONFIGS = sorted(
    path for path in CONFIG_DIR.glob('dfine_*_coco.py')
    if 'hgnetv2' not in path.name)


def test_every_backbone_family_has_a_dfine_config():
    """HGNetv2 has the official sizes; every other family one config."""
    families = {
        Config.fromfile(path).model.backbone.type
        for path in FAMILY_CONFIGS
    }
    assert families == set(FAMILIES) - {'HGNetv2'}


@pytest.mark.parametrize('path', FAMILY_CONFIGS, ids=lambda path: path.stem)
def test_family_config_is_dfine_s_with_the_backbone_feeding_the_neck(path):
    cfg = Config.fromfile(path)
    assert cfg.model.type == 'DFINE'
    assert cfg.model.neck.fusion_block == 'gelan'
    assert cfg.default_hooks.augmentation_schedule.switch_epoch == 120
    with torch.device('meta'):
        backbone = MODELS.build(cfg.model.backbone)
    assert list(backbone.out_channels) == cfg.model.neck.in_channels
