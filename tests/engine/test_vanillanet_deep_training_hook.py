"""Tests of VanillaNetDeepTrainingHook (rtdetr_mm/engine/hooks).

A fake runner checks the schedule arithmetic; a tiny mmengine Runner (a
4-channel VanillaNet on 32x32 inputs, EMAHook on) checks that the hook moves
``act_learn`` on the model and on its EMA copy, and that resuming continues
the schedule exactly.
"""
import math
from types import SimpleNamespace

import pytest
import torch
from mmdet.registry import HOOKS
from mmengine.hooks import EMAHook, Hook
from mmengine.logging import MessageHub
from mmengine.model import BaseModel, ExponentialMovingAverage
from mmengine.runner import IterBasedTrainLoop, Runner
from torch import nn

import rtdetr_mm  # noqa: F401  (registers the modules)
from rtdetr_mm.engine.hooks import VanillaNetDeepTrainingHook
from rtdetr_mm.models.backbones.vanillanet import VanillaNet

TINY = dict(dims=[4, 4, 8, 8], strides=[2, 2, 2])


class TinyModel(BaseModel):
    """A VanillaNet and a linear layer; loss = mean squared output."""

    def __init__(self, backbone_init_cfg=None):
        super().__init__()
        self.backbone = VanillaNet(
            arch=TINY, out_indices=(3, ), init_cfg=backbone_init_cfg)
        self.head = nn.Linear(8, 1)

    def forward(self, inputs, data_samples=None, mode='tensor'):
        x = torch.stack(inputs) if isinstance(inputs, list) else inputs
        out = self.head(self.backbone(x)[0].mean((2, 3)))  # (B, 1)
        if mode == 'loss':
            return dict(loss=out.pow(2).mean())
        return out


def fake_runner(model,
                epoch=0,
                iteration=0,
                iters_per_epoch=5,
                hooks=(),
                load_from=None,
                resume=False):
    return SimpleNamespace(
        model=model,
        hooks=list(hooks),
        epoch=epoch,
        iter=iteration,
        train_dataloader=[None] * iters_per_epoch,
        _load_from=load_from,
        _resume=resume,
        message_hub=MessageHub.get_instance('test_vanillanet_hook'))


def ema_holder(model):
    return SimpleNamespace(ema_model=ExponentialMovingAverage(model))


def act_learns(runner):
    model = runner.model
    emas = [h.ema_model.module for h in runner.hooks]
    return [model.backbone.act_learn] + [e.backbone.act_learn for e in emas]


# ------------------------------------------------------------- fake runner
@pytest.mark.parametrize('schedule', ['linear', 'cosine'])
def test_per_epoch_schedule_on_model_and_ema(schedule):
    model = TinyModel()
    runner = fake_runner(model, hooks=[ema_holder(model)])
    hook = VanillaNetDeepTrainingHook(decay_epochs=4, schedule=schedule)
    hook.before_train(runner)
    seen = []
    for epoch in range(7):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        hook.before_train_iter(runner, 0)  # no change within an epoch
        values = act_learns(runner)
        assert len(set(values)) == 1  # model and EMA agree
        seen.append(values[0])
    progress = [min(e / 4, 1) for e in range(7)]
    expected = progress if schedule == 'linear' else [
        0.5 * (1 - math.cos(math.pi * p)) for p in progress
    ]
    assert seen == pytest.approx(expected, abs=1e-12)
    assert seen[4:] == [1.0, 1.0, 1.0]  # exactly 1: deployable
    assert runner.message_hub.get_scalar('train/act_learn').current() == 1.0


def test_per_iteration_schedule():
    model = TinyModel()
    runner = fake_runner(model, iters_per_epoch=5, hooks=[ema_holder(model)])
    hook = VanillaNetDeepTrainingHook(decay_epochs=2, by_epoch=False)
    hook.before_train(runner)
    for iteration in (0, 1, 4, 7, 10, 15):
        runner.iter = iteration
        runner.epoch = iteration // 5
        hook.before_train_epoch(runner)  # per-iteration: epochs change nothing
        hook.before_train_iter(runner, iteration % 5)
        assert act_learns(runner) == pytest.approx([min(iteration / 10, 1)] *
                                                   2)
    by_iters = VanillaNetDeepTrainingHook(
        decay_iters=8, by_epoch=False, schedule='cosine')
    runner.iter = 2
    by_iters.before_train(runner)
    assert act_learns(runner) == pytest.approx(
        [0.5 * (1 - math.cos(math.pi / 4))] * 2)


def test_resume_is_derived_from_the_counter():
    """A new hook at epoch e sets what an uninterrupted run had at e."""
    continuous = fake_runner(TinyModel())
    hook = VanillaNetDeepTrainingHook(decay_epochs=10, schedule='cosine')
    hook.before_train(continuous)
    for epoch in range(7):
        continuous.epoch = epoch
        hook.before_train_epoch(continuous)
    resumed = fake_runner(
        TinyModel(), epoch=6, load_from='ckpt.pth', resume=True)
    fresh = VanillaNetDeepTrainingHook(decay_epochs=10, schedule='cosine')
    fresh.before_train(resumed)
    assert fresh.active
    assert act_learns(resumed) == act_learns(continuous)


@pytest.mark.parametrize('how', ['init_cfg', 'load_from'])
def test_no_op_when_starting_from_pretrained_weights(how):
    if how == 'init_cfg':
        model = TinyModel(
            backbone_init_cfg=dict(type='Pretrained', checkpoint='any.pth'))
        runner = fake_runner(model, hooks=[ema_holder(model)])
    else:
        model = TinyModel()
        runner = fake_runner(
            model, hooks=[ema_holder(model)], load_from='coco_model.pth')
    hook = VanillaNetDeepTrainingHook(decay_epochs=4)
    hook.before_train(runner)
    hook.before_train_epoch(runner)
    hook.before_train_iter(runner, 0)
    assert not hook.active
    assert act_learns(runner) == [1.0, 1.0]
    forced = VanillaNetDeepTrainingHook(decay_epochs=4, skip_pretrained=False)
    forced.before_train(runner)
    assert act_learns(runner) == [0.0, 0.0]


def test_checkpoint_meta_round_trip():
    model = TinyModel()
    runner = fake_runner(model, epoch=1, hooks=[ema_holder(model)])
    hook = VanillaNetDeepTrainingHook(decay_epochs=4)
    hook.before_train(runner)
    checkpoint = dict(meta=dict(epoch=2))
    hook.before_save_checkpoint(runner, checkpoint)
    assert checkpoint['meta']['vanillanet_act_learn'] == 0.25
    other = TinyModel()
    other_runner = fake_runner(other, hooks=[ema_holder(other)])
    hook.after_load_checkpoint(other_runner, checkpoint)
    assert act_learns(other_runner) == [0.25, 0.25]


def test_per_epoch_schedule_refuses_an_iteration_based_loop():
    runner = fake_runner(TinyModel())
    runner.train_loop = IterBasedTrainLoop.__new__(IterBasedTrainLoop)
    with pytest.raises(ValueError, match='decay_iters'):
        VanillaNetDeepTrainingHook(decay_epochs=1).before_train(runner)
    VanillaNetDeepTrainingHook(
        decay_iters=10, by_epoch=False).before_train(runner)


def test_model_without_vanillanet_is_an_error():
    runner = fake_runner(nn.Linear(2, 2))
    with pytest.raises(RuntimeError, match='no VanillaNet'):
        VanillaNetDeepTrainingHook(decay_epochs=1).before_train(runner)


@pytest.mark.parametrize('kwargs,match', [
    (dict(), 'exactly one'),
    (dict(decay_epochs=2, decay_iters=10, by_epoch=False), 'exactly one'),
    (dict(decay_iters=10), 'by_epoch=False'),
    (dict(decay_epochs=0), 'positive'),
    (dict(decay_epochs='10'), 'positive'),
    (dict(decay_epochs=5, schedule='step'), 'allowed'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VanillaNetDeepTrainingHook(**kwargs)


def test_registered_in_mmdet_hooks():
    hook = HOOKS.build(
        dict(
            type='VanillaNetDeepTrainingHook',
            decay_epochs=3,
            schedule='cosine'))
    assert isinstance(hook, VanillaNetDeepTrainingHook)


# ------------------------------------------------------------ real runner
class Recorder(Hook):
    """Records act_learn of the model and the EMA copy at every epoch."""
    priority = 'LOWEST'

    def __init__(self):
        self.seen = []

    def before_train_epoch(self, runner):
        ema = next(h for h in runner.hooks if isinstance(h, EMAHook))
        self.seen.append((runner.epoch, runner.model.backbone.act_learn,
                          ema.ema_model.module.backbone.act_learn))


def build_runner(work_dir, max_epochs, resume=False):
    recorder = Recorder()
    runner = Runner(
        model=TinyModel(),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=[dict(inputs=torch.randn(3, 32, 32)) for _ in range(4)],
            sampler=dict(type='DefaultSampler', shuffle=False),
            collate_fn=dict(type='default_collate'),
            batch_size=2,
            num_workers=0),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)),
        custom_hooks=[
            EMAHook(momentum=0.5),
            VanillaNetDeepTrainingHook(decay_epochs=4), recorder
        ],
        default_hooks=dict(logger=dict(type='LoggerHook', interval=100)),
        resume=resume,
        experiment_name=f'vanillanet_hook_{max_epochs}_{resume}')
    return runner, recorder


def test_with_mmengine_runner_and_resume(tmp_path):
    runner, recorder = build_runner(tmp_path, max_epochs=2)
    runner.train()
    assert recorder.seen == [(0, 0.0, 0.0), (1, 0.25, 0.25)]
    resumed, recorder = build_runner(tmp_path, max_epochs=5, resume=True)
    resumed.train()
    assert recorder.seen == [(2, 0.5, 0.5), (3, 0.75, 0.75), (4, 1.0, 1.0)]
    resumed.model.backbone.switch_to_deploy()  # schedule done: deployable
