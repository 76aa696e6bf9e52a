"""FiniteLossHook: a NaN/inf loss stops training, naming the term."""
from types import SimpleNamespace

import pytest
import torch
from mmengine.config import Config
from mmengine.hooks import CheckpointHook
from mmengine.runner import get_priority

from rtdetr_mm.engine.hooks import FiniteLossHook
from .._utils import REPO


def _runner(iteration=41, epoch=3):
    return SimpleNamespace(iter=iteration, epoch=epoch)


def test_names_every_non_finite_term():
    outputs = dict(
        loss=torch.tensor(float('nan')),
        loss_cls=torch.tensor(0.7),
        loss_bbox=torch.tensor(float('inf')),
        d1_loss_iou=torch.tensor(float('nan')))
    with pytest.raises(FloatingPointError) as info:
        FiniteLossHook().after_train_iter(_runner(), 0, outputs=outputs)
    message = str(info.value)
    assert 'iteration 42 (epoch 4)' in message
    assert 'loss_bbox=inf' in message and 'd1_loss_iou=nan' in message
    assert 'loss_cls' not in message


def test_finite_losses_pass_and_interval_is_respected():
    hook = FiniteLossHook()
    hook.after_train_iter(
        _runner(),
        0,
        outputs=dict(loss=torch.tensor(1.5), loss_cls=torch.tensor(0.5)))
    every_ten = FiniteLossHook(interval=10)
    bad = dict(loss=torch.tensor(float('nan')))
    every_ten.after_train_iter(_runner(iteration=3), 0, outputs=bad)
    with pytest.raises(FloatingPointError):
        every_ten.after_train_iter(_runner(iteration=9), 0, outputs=bad)


def test_runs_before_checkpoints_and_is_on_by_default():
    assert get_priority(FiniteLossHook.priority) < get_priority(
        CheckpointHook.priority)
    for config in ('rtdetr_r50vd_coco.py', 'toy/rtdetr_riformer_s12_toy.py',
                   'rtdetr_vanillanet_5_coco.py'):
        cfg = Config.fromfile(REPO / 'configs' / config)
        assert cfg.default_hooks.finite_loss == dict(type='FiniteLossHook')
