"""AugmentationStageHook: stages by epoch, on resume, workers restarted."""
import logging
from types import SimpleNamespace

import numpy as np
import pytest
from mmcv.transforms import Compose
from mmdet.datasets import MultiImageMixDataset
from mmengine.dataset import BaseDataset
from torch.utils.data import DataLoader

from rtdetr_mm.engine.hooks import AugmentationStageHook

FLIP = dict(type='RandomFlip', prob=1.0)
PAD = dict(type='Pad', size=(8, 8))
MIXUP = dict(type='BatchMixUp', prob=0.5)
RESIZE = dict(type='BatchRandomChoiceResize', scales=[32, 64])
STAGES = [
    dict(epoch=2, pipeline=[FLIP, PAD], batch_augments=[MIXUP, RESIZE]),
    dict(epoch=4, batch_augments=[RESIZE]),  # the pipeline stays
    dict(epoch=6, pipeline=[PAD], batch_augments=None),
]


class Images(BaseDataset):
    """``num`` images of 4x4 pixels; the pipeline decides their shape."""

    def __init__(self, pipeline=(), num=4):
        self.num = num
        super().__init__(pipeline=list(pipeline), serialize_data=False)

    def load_data_list(self):
        return [dict(index=i) for i in range(self.num)]

    def prepare_data(self, idx):
        return self.pipeline(dict(img=np.zeros((4, 4, 3), np.uint8)))


def make_runner(epoch, dataset=None, loader=None):
    loader = loader or SimpleNamespace(dataset=dataset or Images())
    return SimpleNamespace(
        epoch=epoch,
        model=SimpleNamespace(
            data_preprocessor=SimpleNamespace(batch_augments=['own'])),
        train_dataloader=loader,
        logger=logging.getLogger('augmentation_stage'))


def names(runner):
    pipeline = runner.train_dataloader.dataset.pipeline
    pipeline = getattr(pipeline, 'transforms', pipeline)
    augments = runner.model.data_preprocessor.batch_augments
    if augments not in (None, ['own']):
        augments = [type(a).__name__ for a in augments]
    return [type(t).__name__ for t in pipeline], augments


def test_each_epoch_gets_its_stage(caplog):
    hook = AugmentationStageHook(STAGES)
    runner = make_runner(0)
    seen = []
    for epoch in range(8):
        runner.epoch = epoch
        with caplog.at_level(logging.INFO, 'augmentation_stage'):
            hook.before_train_epoch(runner)
        seen.append((hook.stage_at(epoch), *names(runner)))
    own = ([], ['own'])
    two = (['RandomFlip', 'Pad'], ['BatchMixUp', 'BatchRandomChoiceResize'])
    three = (['RandomFlip', 'Pad'], ['BatchRandomChoiceResize'])
    four = (['Pad'], None)
    assert seen == [(1, *own)] * 2 + [(2, *two)] * 2 + [(3, *three)] * 2 + \
        [(4, *four)] * 2
    assert 'epoch 4: stage 3 of 4 (from epoch 4): batch augments ' \
        "['BatchRandomChoiceResize']" in caplog.text
    assert caplog.text.count('AugmentationStageHook') == 3


def test_resuming_puts_the_stage_in_force_with_what_earlier_ones_set():
    runner = make_runner(5)  # stage 3 sets no pipeline: stage 2's
    AugmentationStageHook(STAGES).before_train_epoch(runner)
    flip_pad = ['RandomFlip', 'Pad']
    assert names(runner) == (flip_pad, ['BatchRandomChoiceResize'])
    late = make_runner(11)
    AugmentationStageHook(STAGES).before_train_epoch(late)
    assert names(late) == (['Pad'], None)


def test_a_key_already_in_force_is_not_set_again():
    hook = AugmentationStageHook(STAGES)
    runner = make_runner(2)
    hook.before_train_epoch(runner)
    pipeline = runner.train_dataloader.dataset.pipeline
    runner.epoch = 4
    hook.before_train_epoch(runner)
    assert runner.train_dataloader.dataset.pipeline is pipeline


def test_multi_image_mix_dataset_gets_transforms_and_types():
    dataset = MultiImageMixDataset(Images(), [dict(type='Pad', size=(6, 6))])
    runner = make_runner(2, dataset=dataset)
    AugmentationStageHook(STAGES).before_train_epoch(runner)
    assert dataset.pipeline_types == ['RandomFlip', 'Pad']
    assert isinstance(dataset.pipeline, list)
    assert dataset[0]['img'].shape == (8, 8, 3)


def test_a_dataset_without_pipeline_is_refused():
    runner = make_runner(2, dataset=SimpleNamespace())
    with pytest.raises(TypeError, match='SimpleNamespace'):
        AugmentationStageHook(STAGES).before_train_epoch(runner)


def test_persistent_workers_are_restarted():
    loader = DataLoader(
        Images(),
        batch_size=4,
        num_workers=1,
        persistent_workers=True,
        collate_fn=lambda batch: batch)

    def shapes():
        return {item['img'].shape for batch in loader for item in batch}

    runner = make_runner(0, loader=loader)
    hook = AugmentationStageHook([dict(epoch=1, pipeline=[PAD])])
    assert shapes() == {(4, 4, 3)}
    runner.epoch = 1
    hook.before_train_epoch(runner)
    assert isinstance(loader.dataset.pipeline, Compose)
    assert shapes() == {(8, 8, 3)}  # workers with the old copy: (4, 4, 3)
    assert shapes() == {(8, 8, 3)}


@pytest.mark.parametrize('stages,error,match', [
    ([], ValueError, 'non-empty list'),
    ([dict(epoch=0, pipeline=[])], ValueError, r'stage 2 needs epoch.*got 0'),
    ([dict(epoch=2.0, pipeline=[])], ValueError, 'int >= 1'),
    ([dict(epoch=True, pipeline=[])], ValueError, 'int >= 1'),
    ([dict(epoch=3, pipeline=[]),
      dict(epoch=3, pipeline=[])], ValueError, r'increase, got \[3, 3\]'),
    ([dict(epoch=3)], ValueError, 'neither pipeline nor batch_augments'),
    ([dict(epoch=3, pipline=[])], ValueError, r"keys \['pipline'\]; allowed"),
    ([dict(epoch=3, pipeline=FLIP)], TypeError, 'list of transform dicts'),
    ([dict(epoch=3, batch_augments=MIXUP)], TypeError, 'or None'),
    (['stage'], TypeError, 'must be a dict'),
])
def test_bad_stages(stages, error, match):
    with pytest.raises(error, match=match):
        AugmentationStageHook(stages)


def test_unknown_types_fail_when_the_hook_is_built():
    with pytest.raises(KeyError, match='Mosiac'):
        AugmentationStageHook([dict(epoch=3, pipeline=[dict(type='Mosiac')])])
