"""The DEIM configs carry the official recipes (DEIM configs/deim_dfine/
deim_hgnetv2_*_coco.yml, configs/deim_rtdetrv2/deim_r*_coco.yml over
base/deim.yml and base/rt_deim.yml); the learning-rate schedule is checked
in tests/engine/test_flat_cosine_schedule.py."""
import pytest
import torch
from mmdet.registry import HOOKS, MODELS
from mmengine.config import Config
from mmengine.runner import Runner

from .._utils import CONFIG_DIR
from ..models.backbones.test_backbone_contract import FAMILIES

# config: policy epochs (e0, e1, e2), base lr, backbone lr, 640 repeats in
# the multi-scale list (None: no multi-scale), decoder layers
RECIPES = {
    'deim_rtdetrv2_r18vd': ((4, 64, 117), 2e-4, 2e-4, 3, 3),
    'deim_rtdetrv2_r34vd': ((4, 64, 117), 2e-4, 1e-4, 3, 4),
    'deim_rtdetrv2_r50vd_m': ((4, 34, 58), 2e-4, 2e-5, 3, 3),
    'deim_rtdetrv2_r50vd': ((4, 34, 58), 2e-4, 2e-5, 3, 6),
    'deim_rtdetrv2_r101vd': ((4, 34, 58), 2e-4, 2e-6, 3, 6),
    'deim_dfine_hgnetv2_n': ((4, 78, 148), 8e-4, 4e-4, None, 3),
    'deim_dfine_hgnetv2_s': ((4, 64, 120), 4e-4, 2e-4, 20, 3),
    'deim_dfine_hgnetv2_m': ((4, 49, 90), 4e-4, 4e-5, 6, 4),
    'deim_dfine_hgnetv2_l': ((4, 29, 50), 5e-4, 2.5e-5, 4, 6),
    'deim_dfine_hgnetv2_x': ((4, 29, 50), 5e-4, 5e-6, 3, 6),
}


def multi_scale_repeats(augments):
    """640 repeats of a [BatchRandomChoiceResize] list, None for none."""
    if augments is None:
        return None
    (resize, ) = augments
    assert resize.type == 'BatchRandomChoiceResize'
    return resize.scales.count(640)


@pytest.mark.parametrize('name', list(RECIPES))
def test_deim_config_follows_the_official_recipe(name):
    (e0, e1, e2), lr, backbone_lr, repeats, layers = RECIPES[name]
    cfg = Config.fromfile(CONFIG_DIR / f'{name}_coco.py')
    model = cfg.model
    rtdetrv2 = 'rtdetrv2' in name
    # MAL in place of VFL; SiLU in every MLP and decoder FFN
    assert model.bbox_head.loss_cls == dict(
        type='MatchabilityAwareLoss', gamma=1.5, loss_weight=1.0)
    silu = dict(type='SiLU')
    assert model.bbox_head.mlp_act_cfg == silu
    assert model.decoder.mlp_act_cfg == silu
    assert model.decoder.layer_cfg.ffn_cfg.act_cfg == silu
    assert model.decoder.num_layers == layers
    if rtdetrv2:
        assert model.decoder.query_pos_method == 'as_reg'
    else:
        assert model.bbox_head.lqe_cfg.act_cfg == silu
    # freeze_at -1, freeze_norm False
    assert model.backbone.frozen_stages == -1
    assert model.backbone.norm_cfg == dict(type='BN', requires_grad=True)
    assert model.backbone.norm_eval is False
    # learning rates
    paramwise = cfg.optim_wrapper.paramwise_cfg
    lr_mult = paramwise.get('custom_keys', {}).get('backbone',
                                                   {}).get('lr_mult', 1.0)
    assert cfg.optim_wrapper.optimizer.lr == lr
    assert lr * lr_mult == pytest.approx(backbone_lr)
    assert paramwise.norm_decay_mult == 0.0
    # four stages: the plain pipeline, then Mosaic/MixUp, RT-DETR's, plain
    assert cfg.train_dataloader.dataset.type == 'MultiImageMixDataset'
    hook = cfg.default_hooks.augmentation_schedule
    assert hook.type == 'AugmentationStageHook' and '_delete_' not in hook
    assert [stage['epoch'] for stage in hook.stages] == [e0, e1, e2]
    stage2, stage3, stage4 = hook.stages
    assert stage2['batch_augments'][0].type == 'BatchMixUp'
    assert stage2['batch_augments'][0].prob == 0.5
    assert multi_scale_repeats(model.data_preprocessor.batch_augments) == \
        repeats
    assert multi_scale_repeats(stage2['batch_augments'][1:] or None) == \
        repeats
    assert multi_scale_repeats(stage3['batch_augments']) == repeats
    assert stage4['batch_augments'] is None
    assert stage2['pipeline'][0].type == 'MultiImageRandomChoice'
    assert [t.type for t in stage3['pipeline'][:3]
            ] == ['PhotoMetricDistortion', 'Expand', 'RandomApply']
    assert [t.type for t in stage4['pipeline']
            ] == [t.type for t in cfg.train_dataloader.dataset.pipeline]
    assert HOOKS.build(hook).stage_at(e2) == 4
    with torch.device('meta'):
        detector = MODELS.build(model)
    assert isinstance(detector.bbox_head.reg_branches[0][1], torch.nn.SiLU)


DEIM_CONFIGS = sorted(CONFIG_DIR.glob('deim_*_coco.py'))


def test_every_backbone_family_has_a_deim_config():
    families = {
        Config.fromfile(path).model.backbone.type
        for path in DEIM_CONFIGS
    }
    assert families == set(FAMILIES)


@pytest.mark.parametrize(
    'path', [p for p in DEIM_CONFIGS if p.stem[:-5] not in RECIPES],
    ids=lambda path: path.stem)
def test_family_config_is_deim_dfine_s_with_the_backbone_feeding_the_neck(
        path):
    cfg = Config.fromfile(path)
    reference = Config.fromfile(CONFIG_DIR / 'deim_dfine_hgnetv2_s_coco.py')
    assert cfg.default_hooks.augmentation_schedule == \
        reference.default_hooks.augmentation_schedule
    assert cfg.param_scheduler == reference.param_scheduler
    assert cfg.model.bbox_head == reference.model.bbox_head
    assert cfg.model.decoder == reference.model.decoder
    with torch.device('meta'):
        backbone = MODELS.build(cfg.model.backbone)
    assert list(backbone.out_channels) == cfg.model.neck.in_channels


@pytest.mark.parametrize('detector', ['rtdetr', 'dfine'])
def test_deim_toy_config_is_the_toy_model_with_the_deim_recipe(detector):
    """Same model as the toy job; MAL, four stages, FlatCosine."""
    deim = Config.fromfile(CONFIG_DIR / 'toy' /
                           f'deim_{detector}_fasternet_t0_toy.py')
    plain = Config.fromfile(CONFIG_DIR / 'toy' /
                            f'{detector}_fasternet_t0_toy.py')
    loss_cls = deim.model.bbox_head.pop('loss_cls')
    plain.model.bbox_head.pop('loss_cls')
    assert loss_cls.type == 'MatchabilityAwareLoss'
    assert deim.model == plain.model
    assert deim.train_cfg == plain.train_cfg
    hook = HOOKS.build(deim.default_hooks.augmentation_schedule)
    assert [hook.stage_at(e) for e in range(10)] == [1] + [2] * 4 + [3] * 4 \
        + [4]
    assert [s['type'] for s in deim.param_scheduler
            ] == ['QuadraticWarmupLR', 'CosineAnnealingLR']


@pytest.mark.parametrize('name,hook',
                         [('deim_rtdetrv2_r18vd', 'AugmentationStageHook'),
                          ('deim_dfine_hgnetv2_n', 'AugmentationStageHook'),
                          ('rtdetrv2_r18vd', 'StopAugmentationHook')])
def test_the_runner_builds_with_one_augmentation_schedule(
        name, hook, tmp_path):
    """mmengine refuses a None for a default hook of its own (a DEIM config
    replaces the inherited stop hook under the same key)."""
    cfg = Config.fromfile(CONFIG_DIR / f'{name}_coco.py')
    cfg.work_dir, cfg.log_level = str(tmp_path), 'WARNING'
    cfg.model.backbone.init_cfg = None
    runner = Runner.from_cfg(cfg)
    names = [type(h).__name__ for h in runner.hooks]
    schedules = [
        n for n in names
        if n.endswith('AugmentationHook') or n == 'AugmentationStageHook'
    ]
    assert schedules == [hook]
