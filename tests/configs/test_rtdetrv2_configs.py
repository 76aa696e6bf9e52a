"""The RT-DETRv2 COCO configs carry the official per-size recipe.

Official values from lyuwenyu/RT-DETR ``rtdetrv2_pytorch``:
``configs/rtdetrv2/rtdetrv2_{r18vd_120e,r34vd_120e,r50vd_m_7x,r50vd_6x,
r101vd_6x}_coco.yml`` over ``include/{dataloader,optimizer,rtdetrv2_r50vd}
.yml`` and ``configs/runtime.yml`` (YAML lists replace, dicts merge), the
README model table, ``src/nn/backbone/presnet.py`` (ImageNet weights,
freeze_at/freeze_norm), ``src/optim/warmup.py`` (LinearWarmup) and
``src/core/yaml_config.py`` (parameter groups by regex).
"""
import re

import pytest
import torch
from mmdet.registry import MODELS, PARAM_SCHEDULERS
from mmengine.config import Config
from mmengine.optim import build_optim_wrapper

from rtdetr_mm.models.utils.rtdetr_official_keys import mm_to_official
from .._utils import CONFIG_DIR

IMAGENET = 'https://github.com/lyuwenyu/storage/releases/download/v0.1/'
# include/dataloader.yml collate_fn scales
V2_SCALES = [480, 512, 544, 576, 608, 640, 640, 640, 672, 704, 736, 768, 800]

# size: v1 config of the same architecture, backbone ImageNet weights,
# decoder layers, eval_idx, epochs, stop epoch (policy epoch = collate
# stop_epoch), multi-scale (R18: `scales: ~`), frozen backbone (freeze_at 0
# + freeze_norm; else -1 / False), README parameters (M)
RECIPES = dict(
    r18vd=('rtdetr_r18vd_coco', 'ResNet18_vd_pretrained_from_paddle.pth', 3,
           -1, 120, 117, False, False, 20),
    r34vd=('rtdetr_r34vd_coco', 'ResNet34_vd_pretrained_from_paddle.pth', 4,
           -1, 120, 117, True, False, 31),
    r50vd_m=('rtdetr_r50vd_m_coco',
             'ResNet50_vd_ssld_v2_pretrained_from_paddle.pth', 6, 2, 84, 81,
             True, True, 36),
    r50vd=('rtdetr_r50vd_coco',
           'ResNet50_vd_ssld_v2_pretrained_from_paddle.pth', 6, -1, 72, 71,
           True, True, 42),
    r101vd=('rtdetr_r101vd_coco',
            'ResNet101_vd_ssld_pretrained_from_paddle.pth', 6, -1, 72, 71,
            True, True, 76))

# Official parameter groups, in order: (regex over the official parameter
# names, lr, weight decay); a trainable parameter takes the first group it
# matches, else the defaults (lr 1e-4, weight decay 1e-4).
LR, WD = 1e-4, 1e-4
_R50_GROUPS = [(r'^(?=.*backbone)(?!.*norm).*$', 1e-5, WD),
               (r'^(?=.*(?:encoder|decoder))(?=.*(?:norm|bn)).*$', LR, 0.)]
GROUPS = dict(
    r18vd=[(r'^(?=.*(?:norm|bn)).*$', LR, 0.)],
    r34vd=[(r'^(?=.*backbone)(?!.*norm|bn).*$', 5e-5, WD),
           (r'^(?=.*backbone)(?=.*norm|bn).*$', 5e-5, 0.),
           (r'^(?=.*(?:encoder|decoder))(?=.*(?:norm|bn|bias)).*$', LR, 0.)],
    r50vd_m=_R50_GROUPS,
    r50vd=_R50_GROUPS,
    r101vd=[(r'^(?=.*backbone)(?!.*norm|bn).*$', 1e-6, WD),
            (r'^(?=.*(?:encoder|decoder))(?=.*(?:norm|bn)).*$', LR, 0.)])
# Official names whose weight decay differs here (documented in the R34
# config): mmengine's custom_keys outrank norm_decay_mult, and
# bias_decay_mult covers parameters named `bias` only.
DECAY_DIFFERENCES = dict(
    r34vd=r'^backbone\..*\.norm\.|\.self_attn\.in_proj_bias$')


def load(size):
    return Config.fromfile(CONFIG_DIR / f'rtdetrv2_{size}_coco.py')


@pytest.mark.parametrize('size', list(RECIPES))
def test_rtdetrv2_config_follows_the_official_recipe(size):
    (v1, weights, layers, eval_idx, epochs, stop, multi_scale, frozen,
     _) = RECIPES[size]
    cfg = load(size)
    model = cfg.model
    # the v1 architecture of the same depth: only the batch resize differs
    v1_model = Config.fromfile(CONFIG_DIR / f'{v1}.py').model
    v1_model.data_preprocessor.batch_augments = \
        model.data_preprocessor.batch_augments
    assert model.to_dict() == v1_model.to_dict()
    assert model.type == 'RTDETR' and model.num_queries == 300
    assert model.backbone.init_cfg.checkpoint == IMAGENET + weights
    assert model.decoder.num_layers == layers
    assert model.decoder.eval_idx == eval_idx
    assert model.decoder.layer_cfg.cross_attn_cfg.num_points == 4
    assert model.dn_cfg.group_cfg.num_dn_queries == 100
    assert model.dn_cfg.label_noise_scale == 0.5
    assert model.dn_cfg.box_noise_scale == 1.0
    # freeze_at 0 + freeze_norm (FrozenBatchNorm2d) or -1 / False
    backbone = model.backbone
    assert backbone.frozen_stages == (0 if frozen else -1)
    assert backbone.norm_cfg.requires_grad is not frozen
    assert backbone.norm_eval is frozen

    assert cfg.train_cfg.max_epochs == epochs
    hook = cfg.default_hooks.augmentation_schedule
    assert hook.type == 'StopAugmentationHook' and hook.switch_epoch == stop
    augments = model.data_preprocessor.batch_augments
    if multi_scale:
        assert [a.type for a in augments] == ['BatchRandomChoiceResize']
        assert augments[0].scales == V2_SCALES
    else:
        assert augments is None
    # the hook drops its default transforms: the official policy ops
    # RandomPhotometricDistort, RandomZoomOut and RandomIoUCrop
    assert 'drop_transforms' not in hook
    transforms = {t.type for t in cfg.train_pipeline}
    assert {'PhotoMetricDistortion', 'Expand', 'RandomApply'} <= transforms

    # 4 GPUs x 4 images (total_batch_size 16), validation 32 = 4 x 8
    assert cfg.train_dataloader.batch_size == 4
    assert cfg.val_dataloader.batch_size == 8
    assert cfg.auto_scale_lr.base_batch_size == 16
    optimizer = cfg.optim_wrapper.optimizer
    assert optimizer.type == 'AdamW' and optimizer.lr == LR
    assert optimizer.weight_decay == WD and optimizer.betas == (0.9, 0.999)
    assert cfg.optim_wrapper.clip_grad == dict(max_norm=0.1, norm_type=2)
    # ModelEMA(decay=0.9999, warmups=2000)
    ema = cfg.custom_hooks[0]
    assert (ema.type, ema.ema_type) == ('EMAHook', 'ExpMomentumEMA')
    assert ema.momentum == 1e-4 and ema.gamma == 2000 and ema.update_buffers
    # runtime.yml sync_bn: True
    assert cfg.sync_bn == 'torch'


@pytest.mark.parametrize('size', list(RECIPES))
def test_rtdetrv2_optimizer_groups_are_the_official_ones(size):
    """Every trainable parameter gets the official lr and weight decay."""
    cfg = load(size)
    with torch.device('meta'):
        detector = MODELS.build(cfg.model)
    num_params = sum(p.numel() for p in detector.parameters()) / 1e6
    # the README truncates (R50: 42.9 M -> 42)
    assert int(num_params) == RECIPES[size][-1]
    optimizer = build_optim_wrapper(detector, cfg.optim_wrapper).optimizer
    ours = {
        id(p): (group['lr'], group['weight_decay'])
        for group in optimizer.param_groups
        for p in group['params']
    }
    trainable = {
        name: p
        for name, p in detector.named_parameters() if p.requires_grad
    }
    official = mm_to_official(trainable, 'v2')
    assert len(official) == len(trainable)
    differences = []
    for name, p in official.items():
        lr, wd = next(
            ((lr, wd)
             for pattern, lr, wd in GROUPS[size] if re.findall(pattern, name)),
            (LR, WD))
        got_lr, got_wd = ours[id(p)]
        assert got_lr == pytest.approx(lr, rel=1e-9), name
        if got_wd != pytest.approx(wd, rel=1e-9):
            differences.append(name)
    allowed = DECAY_DIFFERENCES.get(size)
    unexpected = [
        n for n in differences if not allowed or not re.search(allowed, n)
    ]
    assert not unexpected, f'weight decay differs from official: {unexpected}'
    if allowed:
        assert differences, 'the documented differences no longer occur'


@pytest.mark.parametrize('size', list(RECIPES))
def test_rtdetrv2_warmup_is_the_official_linear_warmup(size):
    """LinearWarmup(2000): iteration i trains at min(1, (i + 1) / 2000) of
    the lr (set at construction, then after every optimizer step)."""
    cfg = load(size)
    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.AdamW([param], lr=LR)
    schedulers = [
        PARAM_SCHEDULERS.build(
            s, default_args=dict(optimizer=optimizer, epoch_length=100))
        for s in cfg.param_scheduler
    ]
    for i in range(2200):
        expected = LR * min(1.0, (i + 1) / 2000)
        assert optimizer.param_groups[0]['lr'] == pytest.approx(
            expected, rel=1e-9), i
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
