"""DEIM's four augmentation stages on the toy set, as a config sets them.

The config is the toy example of configs/_base_/datasets/toy_shapes_deim.py
(policy [1, 5, 9]); for an epoch of each stage it draws batches through the
hook's switch and asserts which transforms ran on each sample and whether
the batch was mixed.
"""
import random
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from mmdet.datasets.transforms import (Expand, MinIoURandomCrop, Mosaic,
                                       PhotoMetricDistortion)
from mmdet.registry import DATASETS, HOOKS, MODELS
from mmengine.config import Config
from mmengine.dataset import pseudo_collate
from mmengine.logging import MessageHub, MMLogger

from rtdetr_mm.datasets import generate_toy_shapes
from rtdetr_mm.datasets.transforms import CenteredRandomAffine
from .._utils import CONFIG_DIR

SPIED = (Mosaic, CenteredRandomAffine, PhotoMetricDistortion, Expand,
         MinIoURandomCrop)
MOSAIC = {'Mosaic', 'CenteredRandomAffine', 'PhotoMetricDistortion'}
RTDETR = {'PhotoMetricDistortion', 'Expand', 'MinIoURandomCrop'}


def write_toy_deim_config(path):
    """The documented toy example: DEIM stages [1, 5, 9] on D-FINE-T0."""
    base = [
        str(CONFIG_DIR / 'toy' / 'dfine_fasternet_t0_toy.py'),
        str(CONFIG_DIR / '_base_' / 'datasets' / 'toy_shapes_deim.py')
    ]
    path.write_text(f'''_base_ = {base!r}
train_dataloader = dict(dataset=_base_.deim_train_dataset)
multi_scale = _base_.deim_multi_scale
model = dict(data_preprocessor=dict(batch_augments=multi_scale))
default_hooks = dict(
    augmentation_schedule=dict(
        type='AugmentationStageHook',
        stages=[
            dict(epoch=1, pipeline=_base_.train_pipeline_stage2,
                 batch_augments=[_base_.deim_batch_mixup, *multi_scale]),
            dict(epoch=5, pipeline=_base_.train_pipeline_stage3,
                 batch_augments=multi_scale),
            dict(epoch=9, pipeline=_base_.train_pipeline_stage4,
                 batch_augments=None)]))
''')
    return path


def small_toy_data(root):
    """12 training images (and 4 validation ones) under ``root``."""
    return generate_toy_shapes(root, dict(train=(12, 0), val=(4, 1)))


@pytest.fixture(scope='module')
def toy_deim(tmp_path_factory):
    tmp = tmp_path_factory.mktemp('toy_deim')
    cfg = Config.fromfile(write_toy_deim_config(tmp / 'deim_toy.py'))
    cfg.train_dataloader.dataset.dataset.data_root = str(
        small_toy_data(tmp / 'toy_shapes'))
    return cfg


@pytest.fixture
def ran(monkeypatch):
    """Names of the spied transforms called since the list was cleared."""
    calls = []
    for cls in SPIED:

        def spy(self, results, original=cls.transform, name=cls.__name__):
            calls.append(name)
            return original(self, results)

        monkeypatch.setattr(cls, 'transform', spy)
    return calls


def draw(dataset, preprocessor, ran, batches, batch_size=4):
    """Per sample: spied transforms that ran, its scale factor; per batch:
    whether it was mixed, its input size."""
    samples, mixed, sizes = [], [], []
    hub = MessageHub.get_current_instance()
    for b in range(batches):
        packed = []
        for i in range(batch_size):
            ran.clear()
            packed.append(dataset[(b * batch_size + i) % len(dataset)])
            samples.append((set(ran), packed[-1]['data_samples'].scale_factor))
        before = [len(p['data_samples'].gt_instances) for p in packed]
        hub.update_info('iter', b)
        data = preprocessor(pseudo_collate(packed), training=True)
        after = [len(s.gt_instances) for s in data['data_samples']]
        mixed.append(after != before)
        if mixed[-1]:  # own boxes + those of the image before
            assert after == [n + before[i - 1] for i, n in enumerate(before)]
        sizes.append(data['inputs'].shape[-1])
    return samples, mixed, sizes


def test_each_stage_is_visible(toy_deim, ran):
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    cfg = toy_deim
    dataset = DATASETS.build(cfg.train_dataloader.dataset)
    preprocessor = MODELS.build(cfg.model.data_preprocessor)
    hook = HOOKS.build(cfg.default_hooks.augmentation_schedule)
    runner = SimpleNamespace(
        train_dataloader=SimpleNamespace(dataset=dataset),
        model=SimpleNamespace(data_preprocessor=preprocessor),
        logger=MMLogger.get_current_instance())
    seen = {}
    for epoch, batches in ((0, 2), (3, 6), (7, 2), (9, 2)):
        runner.epoch = epoch
        hook.before_train_epoch(runner)
        seen[hook.stage_at(epoch)] = draw(dataset, preprocessor, ran, batches)

    # stages 1 and 4: none of Mosaic, photometric, zoom-out, IoU crop,
    # MixUp; each image straight from 256 to 192 px; multi-scale until 4
    for stage in (1, 4):
        samples, mixed, _ = seen[stage]
        assert all(not calls and scale == (0.75, 0.75)
                   for calls, scale in samples)
        assert not any(mixed)
    assert set(seen[4][2]) == {192}
    assert len(set(seen[1][2] + seen[2][2] + seen[3][2])) > 1

    # stage 2: Mosaic (the 192 px canvas, kept at its size) or the zoom-out
    # and IoU crop, never both; some batches mixed
    samples, mixed, _ = seen[2]
    mosaic = [scale for calls, scale in samples if calls == MOSAIC]
    others = [calls for calls, _ in samples if calls != MOSAIC]
    assert mosaic and others
    assert all(scale == (1.0, 1.0) for scale in mosaic)
    assert all({'PhotoMetricDistortion', 'Expand'} <= calls <= RTDETR
               for calls in others)
    assert any(mixed) and not all(mixed)

    # stage 3: RT-DETR's augmentation only
    samples, mixed, _ = seen[3]
    assert all({'PhotoMetricDistortion', 'Expand'} <= calls <= RTDETR
               for calls, _ in samples)
    assert any('MinIoURandomCrop' in calls for calls, _ in samples)
    assert not any(mixed)
