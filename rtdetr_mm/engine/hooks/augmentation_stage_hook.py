"""AugmentationStageHook: switch training augmentation by epoch."""
from numbers import Integral
from typing import List, Sequence

from mmcv.transforms import Compose
from mmdet.datasets import MultiImageMixDataset
from mmdet.registry import HOOKS, MODELS, TRANSFORMS
from mmengine.hooks import Hook
from torch import nn

STAGE_KEYS = ('epoch', 'pipeline', 'batch_augments')


@HOOKS.register_module()
class AugmentationStageHook(Hook):
    """Train with a different augmentation from given epochs on.

    Stage 1 is the config's own training pipeline and
    ``model.data_preprocessor.batch_augments``; each entry of ``stages``
    starts the next one (stage 2, 3, ...)::

        stages=[
            dict(epoch=4, pipeline=[...], batch_augments=[...]),
            dict(epoch=29, pipeline=[...]),  # batch augments kept
            dict(epoch=50, pipeline=[...], batch_augments=None),
        ]

    Before each training epoch the latest stage whose ``epoch`` is at most
    ``runner.epoch`` (0-based) is put in force, once, so a run resumed
    inside a later stage gets it too. A stage changes what it names:
    ``pipeline``, the training dataset's pipeline (for a
    :class:`MultiImageMixDataset` its mixing pipeline, which runs after the
    wrapped dataset's loading; for a plain dataset the whole pipeline), and
    ``batch_augments``, the data preprocessor's (None: none); what it leaves
    out stays as the stages before set it. Persistent dataloader workers are
    restarted when the pipeline changes (they hold a copy of the dataset),
    as mmdet's :class:`PipelineSwitchHook` does.

    DEIM's four stages are one use (``configs/_base_/datasets/
    coco_detection_deim.py``); one stage with the plain pipeline and
    ``batch_augments=None`` is RT-DETRv2's and D-FINE's stop epoch.
    Transforms and batch augments are built here, so a wrong type fails when
    the runner is built, not at its epoch.

    Args:
        stages (Sequence[dict]): Stages 2, 3...: each ``dict(epoch=int,
            pipeline=list of dicts, batch_augments=list of dicts or None)``
            with at least one of ``pipeline`` and ``batch_augments``; epochs
            are ints >= 1, increasing.
    """

    def __init__(self, stages: Sequence[dict]) -> None:
        if not isinstance(stages, Sequence) or not stages:
            raise ValueError('AugmentationStageHook: stages must be a '
                             f'non-empty list of dicts, got {stages!r}')
        self.epochs: List[int] = []
        self.stages: List[dict] = []  # stages 2, 3...: what each sets, built
        for number, stage in enumerate(stages, 2):
            self.epochs.append(self._check_stage(number, stage, self.epochs))
            built = {}
            if 'pipeline' in stage:
                transforms = [TRANSFORMS.build(t) for t in stage['pipeline']]
                types = [self._type_name(t) for t in stage['pipeline']]
                built['pipeline'] = (transforms, types)
            if 'batch_augments' in stage:
                augments = stage['batch_augments']
                built['batch_augments'] = None if augments is None else [
                    MODELS.build(a) for a in augments
                ]
            self.stages.append(built)
        self._in_force = 1

    @staticmethod
    def _check_stage(number: int, stage, epochs: List[int]) -> int:
        """The epoch of stage ``number``, checked with those before."""
        if not isinstance(stage, dict):
            raise TypeError(
                f'AugmentationStageHook: stage {number} must be a dict with '
                f'keys {STAGE_KEYS}, got {stage!r}')
        unknown = sorted(set(stage) - set(STAGE_KEYS))
        if unknown:
            raise ValueError(
                f'AugmentationStageHook: stage {number} has unknown keys '
                f'{unknown}; allowed: {STAGE_KEYS}')
        if 'pipeline' not in stage and 'batch_augments' not in stage:
            raise ValueError(f'AugmentationStageHook: stage {number} sets '
                             'neither pipeline nor batch_augments')
        epoch = stage.get('epoch')
        if not isinstance(epoch, Integral) or isinstance(epoch, bool) \
                or epoch < 1:
            raise ValueError(
                f'AugmentationStageHook: stage {number} needs epoch, an int '
                '>= 1 (its first epoch, 0-based; stage 1, the config\'s own '
                f'augmentation, starts at 0), got {epoch!r}')
        if epochs and epoch <= epochs[-1]:
            raise ValueError('AugmentationStageHook: stage epochs must '
                             f'increase, got {epochs + [epoch]}')
        for key, allowed in (('pipeline', 'a list of transform dicts'),
                             ('batch_augments',
                              'a list of batch augment dicts or None')):
            value = stage.get(key, [])
            if value is None and key == 'batch_augments':
                continue
            if not isinstance(value, (list, tuple)) or not all(
                    isinstance(v, dict) for v in value):
                raise TypeError(f'AugmentationStageHook: stage {number} '
                                f'{key} must be {allowed}, got {value!r}')
        return int(epoch)

    @staticmethod
    def _type_name(cfg: dict) -> str:
        t = cfg['type']
        return t if isinstance(t, str) else t.__name__

    def stage_at(self, epoch: int) -> int:
        """The stage in force at ``epoch``: 1 (the config's own), 2, ..."""
        return 1 + sum(e <= epoch for e in self.epochs)

    def before_train_epoch(self, runner) -> None:
        """Put the stage of ``runner.epoch`` in force if it is a new one."""
        stage = self.stage_at(runner.epoch)
        if stage <= self._in_force:
            return
        # the latest value of each key over stages 2..stage; a key set by
        # the stage in force or an earlier one is in force already
        latest = {}
        for number, built in enumerate(self.stages[:stage - 1], 2):
            latest.update({k: (number, v) for k, v in built.items()})
        changes = {k: v for k, (n, v) in latest.items() if n > self._in_force}
        applied = []
        if 'pipeline' in changes:
            transforms, types = changes['pipeline']
            self._set_pipeline(runner.train_dataloader, transforms, types)
            applied.append(f'pipeline {types}')
        if 'batch_augments' in changes:
            augments = changes['batch_augments']
            model = getattr(runner.model, 'module', runner.model)
            model.data_preprocessor.batch_augments = None if augments is None \
                else nn.ModuleList(augments)
            names = None if augments is None else [
                type(a).__name__ for a in augments
            ]
            applied.append(f'batch augments {names}')
        self._in_force = stage
        runner.logger.info(
            f'AugmentationStageHook: epoch {runner.epoch}: stage {stage} of '
            f'{len(self.stages) + 1} (from epoch {self.epochs[stage - 2]}): ' +
            '; '.join(applied))

    @staticmethod
    def _set_pipeline(loader, transforms: list, types: List[str]) -> None:
        """Give the training dataset ``transforms``; restart workers."""
        dataset = loader.dataset
        if isinstance(dataset, MultiImageMixDataset):
            dataset.pipeline = list(transforms)
            dataset.pipeline_types = list(types)
        elif hasattr(dataset, 'pipeline'):
            dataset.pipeline = Compose(transforms)
        else:
            raise TypeError(
                'AugmentationStageHook needs a training dataset with a '
                'pipeline (a BaseDataset or a MultiImageMixDataset), got '
                f'{type(dataset).__name__}')
        if getattr(loader, 'persistent_workers', False) and \
                getattr(loader, '_iterator', None) is not None:
            # persistent workers keep the dataset they were started with:
            # without an iterator the next epoch starts new ones
            loader._iterator = None
