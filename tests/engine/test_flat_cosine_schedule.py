"""DEIM's FlatCosine learning-rate schedule from mmdet/mmengine schedulers.

DEIM (``engine/optim/lr_scheduler.py``) gives, for a global iteration
``c``, ``L`` iterations per epoch and each parameter group's ``init`` lr::

    f(c) = init * (c / W) ** 2            c <= W      (W = warmup_iter 2000)
         = init                           W < c <= F  (F = flat_epoch * L)
         = min_lr                         c >= T - N  (T = epochs * L,
                                                       N = no_aug_epoch * L)
         = min_lr + (init - min_lr) * (1 + cos(pi * (c - F) / (T - F - N))) / 2

with ``min_lr = lr_gamma * init``. Its trainer (``engine/solver/
det_engine.py``) calls ``step(c)`` after the optimizer step of iteration
``c``, so iteration ``c >= 1`` trains at ``f(c - 1)``; iteration 0 at what
the recipe's LinearWarmup, built but then unused, set: ``init / 2000``
(RT-DETRv2-based recipes) or ``init / 500`` (D-FINE-based).

A DEIM config writes (mmengine python configs cannot compute a base's
scheduler from a child's epochs, so each config writes its own)::

    param_scheduler = [
        dict(type='QuadraticWarmupLR', by_epoch=False, begin=0, end=2000),
        dict(type='CosineAnnealingLR', eta_min_ratio=lr_gamma,
             by_epoch=True, begin=flat_epoch, end=epochs - no_aug_epoch,
             convert_to_iter_based=True)
    ]

mmdet's QuadraticWarmupLR trains iteration ``t`` at ``init * ((t + 1) /
2000) ** 2 = f(t + 1)`` and mmengine's cosine at ``f(t)``: the schedule runs
two iterations ahead of the official one during the warm-up, one after it.
After the cosine's end the lr stays at ``f(T - N - 1)``, above ``min_lr`` by
``(init - min_lr) * sin(pi / 2D) ** 2`` (``D`` cosine iterations: < 1e-9
on COCO). The chain needs ``flat_epoch * L >= 2000`` (true on COCO).
When ``flat_epoch >= epochs - no_aug_epoch`` the official lr stays at
``init`` after the warm-up (DEIM-D-FINE-N: flat_epoch 7800) and the config
writes the warm-up alone: CosineAnnealingLR refuses ``begin >= end``.
"""
import math

import pytest
import torch
from mmdet.registry import PARAM_SCHEDULERS
from mmengine.config import Config

from .._utils import CONFIG_DIR

WARMUP_ITERS = 2000  # warmup_iter of every DEIM recipe (base/deim.yml)
ITERS_PER_EPOCH = 100  # flat_epoch * 100 >= 2000 in every recipe
LRS = (2e-4, 1e-5)  # two parameter groups (e.g. the backbone's)

# Official DEIM recipes (configs/deim_dfine/deim_hgnetv2_*_coco.yml,
# configs/deim_rtdetrv2/deim_r*_coco.yml over base/deim.yml, rt_deim.yml):
# epochs, flat_epoch, no_aug_epoch, lr_gamma
OFFICIAL = dict(
    hgnetv2_n=(160, 7800, 12, 1.0),
    hgnetv2_s=(132, 64, 12, 0.5),
    hgnetv2_m=(102, 49, 12, 0.5),
    hgnetv2_l=(58, 29, 8, 0.5),
    hgnetv2_x=(58, 29, 8, 0.5),
    r18vd=(120, 64, 3, 0.5),
    r34vd=(120, 64, 3, 0.5),
    r50vd_m=(60, 34, 2, 0.5),
    r50vd=(60, 34, 2, 0.5),
    r101vd=(60, 34, 2, 0.5))


def official_flat_cosine(c, init, *, epochs, flat_epoch, no_aug_epoch,
                         lr_gamma):
    """f(c) of the module docstring."""
    total = epochs * ITERS_PER_EPOCH
    flat = flat_epoch * ITERS_PER_EPOCH
    no_aug = no_aug_epoch * ITERS_PER_EPOCH
    min_lr = lr_gamma * init
    if c <= WARMUP_ITERS:
        return init * (c / WARMUP_ITERS)**2
    if c <= flat:
        return init
    if c >= total - no_aug:
        return min_lr
    progress = (c - flat) / (total - flat - no_aug)
    return min_lr + (init - min_lr) * (1 + math.cos(math.pi * progress)) / 2


def scheduled_lrs(param_scheduler, num_iters):
    """Each group's lr at each iteration, schedulers built as the Runner
    does and stepped after every optimizer step (as ParamSchedulerHook)."""
    params = [torch.nn.Parameter(torch.zeros(1)) for _ in LRS]
    optimizer = torch.optim.AdamW(
        [dict(params=[p], lr=lr) for p, lr in zip(params, LRS)])
    schedulers = [
        PARAM_SCHEDULERS.build(
            cfg,
            default_args=dict(
                optimizer=optimizer, epoch_length=ITERS_PER_EPOCH))
        for cfg in param_scheduler
    ]
    lrs = []
    for _ in range(num_iters):
        lrs.append([group['lr'] for group in optimizer.param_groups])
        optimizer.step()
        for scheduler in schedulers:
            scheduler.step()
    return lrs


def check_flat_cosine(param_scheduler, epochs, flat_epoch, no_aug_epoch,
                      lr_gamma):
    """Every iteration's lr is the official one (with the offset)."""
    assert flat_epoch * ITERS_PER_EPOCH >= WARMUP_ITERS
    recipe = dict(
        epochs=epochs,
        flat_epoch=flat_epoch,
        no_aug_epoch=no_aug_epoch,
        lr_gamma=lr_gamma)
    lrs = scheduled_lrs(param_scheduler, epochs * ITERS_PER_EPOCH)
    wrong = []
    for t, got in enumerate(lrs):
        # official: iteration c >= 1 trains at f(c - 1); ours runs two
        # iterations ahead in the warm-up, one after it
        c = t + 2 if t < WARMUP_ITERS else t + 1
        expected = [
            official_flat_cosine(c - 1, init, **recipe) for init in LRS
        ]
        if not all(
                math.isclose(a, b, rel_tol=1e-6)
                for a, b in zip(got, expected)):
            wrong.append((t, got, expected))
    assert not wrong, f'{len(wrong)} iterations differ, e.g. {wrong[:3]}'
    # the last iteration trains at min_lr
    assert lrs[-1] == pytest.approx([lr_gamma * lr for lr in LRS], rel=1e-6)


def test_lr_gamma_one_keeps_the_lr_flat():
    """lr_gamma 1 (D-FINE-N's recipe) with a cosine scheduler: no decay."""
    epochs, flat_epoch, no_aug_epoch = 40, 25, 5
    param_scheduler = [
        dict(type='QuadraticWarmupLR', by_epoch=False, begin=0, end=2000),
        dict(
            type='CosineAnnealingLR',
            eta_min_ratio=1.0,
            by_epoch=True,
            begin=flat_epoch,
            end=epochs - no_aug_epoch,
            convert_to_iter_based=True)
    ]
    check_flat_cosine(param_scheduler, epochs, flat_epoch, no_aug_epoch, 1.0)
    lrs = scheduled_lrs(param_scheduler, epochs * ITERS_PER_EPOCH)
    assert all(lr == pytest.approx(list(LRS)) for lr in lrs[WARMUP_ITERS:])


def test_a_flat_phase_past_the_decay_has_no_cosine_scheduler():
    """flat_epoch >= epochs - no_aug_epoch (DEIM-D-FINE-N: 7800 vs 148):
    a cosine scheduler cannot be built, hence the warm-up alone."""
    with pytest.raises(ValueError, match='end should be larger than begin'):
        scheduled_lrs([
            dict(
                type='CosineAnnealingLR',
                eta_min_ratio=1.0,
                by_epoch=True,
                begin=7800,
                end=148,
                convert_to_iter_based=True)
        ], 1)


@pytest.mark.parametrize('recipe', sorted(OFFICIAL))
def test_deim_config_follows_flat_cosine(recipe):
    """Every official DEIM recipe has its config, with its FlatCosine."""
    family = 'dfine' if recipe.startswith('hgnetv2') else 'rtdetrv2'
    epochs, flat_epoch, no_aug_epoch, lr_gamma = OFFICIAL[recipe]
    cfg = Config.fromfile(CONFIG_DIR / f'deim_{family}_{recipe}_coco.py')
    assert cfg.train_cfg.max_epochs == epochs
    check_flat_cosine(cfg.param_scheduler, epochs, flat_epoch, no_aug_epoch,
                      lr_gamma)
