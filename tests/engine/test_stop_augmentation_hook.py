"""StopAugmentationHook: D-FINE's second stage (no strong augmentation)."""
import copy
import logging
from types import SimpleNamespace

import pytest
import torch
from mmcv.transforms import Compose
from mmengine.hooks import EMAHook
from mmengine.logging import MessageHub
from mmengine.optim import OptimWrapper
from torch import nn

from rtdetr_mm.engine.hooks import StopAugmentationHook

TRAIN_PIPELINE = [
    dict(type='LoadImageFromFile'),
    dict(type='PhotoMetricDistortion'),
    dict(type='Expand', mean=[0, 0, 0]),
    dict(
        type='RandomApply', transforms=dict(type='MinIoURandomCrop'),
        prob=0.8),
    dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs')
]


def names(pipeline):
    return [type(t).__name__ for t in pipeline.transforms]


def make_runner(epoch, tmp_path, name='stop_aug'):
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4))
    model.data_preprocessor = SimpleNamespace(batch_augments=['resize'])
    ema = EMAHook(ema_type='ExpMomentumEMA', momentum=1e-4, gamma=2000)
    runner = SimpleNamespace(
        epoch=epoch,
        iter=100 * epoch,
        model=model,
        hooks=[ema],
        message_hub=MessageHub.get_instance(f'{name}_{epoch}'),
        optim_wrapper=OptimWrapper(torch.optim.AdamW(model.parameters())),
        logger=logging.getLogger('stop_aug'),
        train_dataloader=SimpleNamespace(
            dataset=SimpleNamespace(pipeline=Compose(TRAIN_PIPELINE))))
    ema.before_run(runner)
    return runner


def train_step(runner):
    loss = runner.model(torch.randn(8, 3)).square().mean()
    runner.optim_wrapper.update_params(loss)
    runner.hooks[0].after_train_iter(runner, 0)


def test_switches_at_the_stop_epoch_and_on_resume(tmp_path, caplog):
    hook = StopAugmentationHook(3, ema_momentum=2e-4)
    runner = make_runner(2, tmp_path)
    hook.before_train_epoch(runner)
    assert len(names(runner.train_dataloader.dataset.pipeline)) == 6
    assert runner.model.data_preprocessor.batch_augments == ['resize']
    runner.epoch = 3
    with caplog.at_level(logging.INFO, 'stop_aug'):
        hook.before_train_epoch(runner)
    assert names(runner.train_dataloader.dataset.pipeline) == \
        ['LoadImageFromFile', 'RandomFlip', 'PackDetInputs']
    assert runner.model.data_preprocessor.batch_augments is None
    assert runner.hooks[0].ema_model.momentum == 2e-4
    assert "without PhotoMetricDistortion, Expand, RandomApply and batch" \
        in caplog.text
    # a run resumed after the stop epoch switches too, without reloading
    resumed = make_runner(5, tmp_path)
    StopAugmentationHook(3, reload_best=True).before_train_epoch(resumed)
    assert resumed.model.data_preprocessor.batch_augments is None


def test_reload_best_restores_weights_ema_and_optimizer(tmp_path):
    runner = make_runner(4, tmp_path)
    for _ in range(3):
        train_step(runner)
    ema = runner.hooks[0]
    checkpoint = copy.deepcopy(
        dict(
            meta=dict(epoch=2),
            state_dict=runner.model.state_dict(),
            optimizer=runner.optim_wrapper.state_dict()))
    ema.before_save_checkpoint(runner, checkpoint)  # as mmengine saves it
    path = tmp_path / 'best_coco_bbox_mAP_epoch_2.pth'
    torch.save(checkpoint, path)
    raw = {k: v.clone() for k, v in runner.model.state_dict().items()}
    averaged = {k: v.clone() for k, v in ema.ema_model.state_dict().items()}
    step = int(runner.optim_wrapper.optimizer.state_dict()['state'][0]['step'])
    for _ in range(2):  # training goes on after the best epoch
        train_step(runner)
    assert not torch.equal(runner.model[0].weight, raw['0.weight'])

    runner.message_hub.update_info('best_ckpt', str(path))
    StopAugmentationHook(4, reload_best=True).before_train_epoch(runner)
    for k, v in runner.model.state_dict().items():
        torch.testing.assert_close(v, raw[k], rtol=0, atol=0)
    for k, v in ema.ema_model.state_dict().items():
        torch.testing.assert_close(v, averaged[k], rtol=0, atol=0)
    assert not torch.equal(raw['0.weight'], averaged['module.0.weight'])
    state = runner.optim_wrapper.optimizer.state_dict()['state'][0]
    assert int(state['step']) == step == 3


def test_reload_best_without_a_best_checkpoint_says_what_to_set(tmp_path):
    runner = make_runner(4, tmp_path, name='no_best')
    with pytest.raises(RuntimeError, match='save_best'):
        StopAugmentationHook(4, reload_best=True).before_train_epoch(runner)


@pytest.mark.parametrize('kwargs,match', [
    (dict(switch_epoch=-1), 'switch_epoch'),
    (dict(switch_epoch=2.0), 'switch_epoch'),
    (dict(switch_epoch=2, ema_momentum=1.5), 'ema_momentum'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        StopAugmentationHook(**kwargs)


def test_drop_transforms_must_name_a_transform(tmp_path):
    hook = StopAugmentationHook(0, drop_transforms=['Mosaic'])
    with pytest.raises(ValueError, match="'Mosaic'.*'PhotoMetricDistortion'"):
        hook.before_train_epoch(make_runner(0, tmp_path, name='names'))
