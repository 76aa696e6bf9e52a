"""VanillaNet's deep-training schedule as an mmengine hook.

Deep training (VanillaNet paper, Sec. 3.1) starts every layer's leaky-ReLU at
slope ``act_learn = 0`` (a ReLU: two non-linear layers per block) and moves it
to 1 (the identity: the block's convolutions merge into one) over
``decay_epochs``. The official loop updates the live model only, so its EMA
copy keeps slope 1 and evaluates a different network during the decay; this
hook sets the slope on the model and on every EMA copy.
"""
import math
from typing import Iterator, Optional

from mmdet.registry import HOOKS
from mmengine.hooks import Hook
from mmengine.logging import print_log
from mmengine.model import is_model_wrapper
from mmengine.runner import IterBasedTrainLoop
from torch import nn

from ...models.backbones.vanillanet import VanillaNet

META_KEY = 'vanillanet_act_learn'


@HOOKS.register_module()
class VanillaNetDeepTrainingHook(Hook):
    """Schedule ``act_learn`` of every :class:`VanillaNet` from 0 to 1.

    The value is a function of the training counter (``runner.epoch`` or
    ``runner.iter``), never accumulated, so a resumed run continues exactly
    where it stopped. With ``progress = min(counter / length, 1)``:
    ``linear``: ``act_learn = progress``; ``cosine``:
    ``act_learn = (1 - cos(pi * progress)) / 2``.

    Fine-tuning from released weights (trained to ``act_learn = 1``) must not
    undo that, so with ``skip_pretrained=True`` the hook is a no-op when a
    VanillaNet has ``init_cfg=dict(type='Pretrained', ...)`` or the runner
    loads weights (``load_from`` without ``resume``).

    Args:
        decay_epochs (float, optional): length of the schedule in epochs
            (official: 100 of 300). Default: None.
        decay_iters (int, optional): length in iterations (only with
            ``by_epoch=False``; for iteration-based loops). Give exactly one
            of ``decay_epochs`` and ``decay_iters``. Default: None.
        by_epoch (bool): update once per epoch, before it starts (the
            official behaviour), or before every iteration. Default: True.
        schedule (str): ``'linear'`` (official default) or ``'cosine'``.
        skip_pretrained (bool): leave ``act_learn`` alone when training
            starts from pretrained weights. Default: True.

    Example:
        >>> custom_hooks = [
        ...     dict(type='EMAHook', momentum=0.0001),
        ...     dict(type='VanillaNetDeepTrainingHook', decay_epochs=100)]
    """

    priority = 'NORMAL'
    SCHEDULES = ('linear', 'cosine')

    def __init__(self,
                 decay_epochs: Optional[float] = None,
                 decay_iters: Optional[int] = None,
                 by_epoch: bool = True,
                 schedule: str = 'linear',
                 skip_pretrained: bool = True):
        name = type(self).__name__
        if (decay_epochs is None) == (decay_iters is None):
            raise ValueError(f'{name}: give exactly one of decay_epochs and '
                             f'decay_iters, got decay_epochs={decay_epochs!r}'
                             f', decay_iters={decay_iters!r}')
        if by_epoch and decay_iters is not None:
            raise ValueError(f'{name}: decay_iters={decay_iters!r} needs '
                             'by_epoch=False (a per-iteration schedule)')
        length = decay_epochs if decay_iters is None else decay_iters
        if isinstance(length,
                      bool) or not isinstance(length,
                                              (int, float)) or length <= 0:
            raise ValueError(f'{name}: the schedule length must be a '
                             f'positive number, got {length!r}')
        if schedule not in self.SCHEDULES:
            raise ValueError(f'{name}: schedule={schedule!r}; allowed: '
                             f'{self.SCHEDULES}')
        self.decay_epochs = decay_epochs
        self.decay_iters = decay_iters
        self.by_epoch = by_epoch
        self.schedule = schedule
        self.skip_pretrained = skip_pretrained
        self.active: Optional[bool] = None  # decided in before_train

    # ------------------------------------------------------------------
    def value_at(self, progress: float) -> float:
        """``act_learn`` at ``progress`` (fraction of the schedule done)."""
        progress = min(max(progress, 0.0), 1.0)
        if self.schedule == 'linear':
            return progress
        return 0.5 * (1.0 - math.cos(math.pi * progress))

    def _progress(self, runner) -> float:
        if self.by_epoch:
            return runner.epoch / self.decay_epochs
        total = self.decay_iters
        if total is None:
            total = self.decay_epochs * len(runner.train_dataloader)
        return runner.iter / total

    @staticmethod
    def _targets(runner) -> Iterator[nn.Module]:
        """The model and every EMA copy held by a hook (``ema_model``)."""
        model = runner.model
        yield model.module if is_model_wrapper(model) else model
        for hook in runner.hooks:
            ema = getattr(hook, 'ema_model', None)
            if isinstance(ema, nn.Module):
                yield ema

    def _backbones(self, runner):
        found = [
            m for target in self._targets(runner) for m in target.modules()
            if isinstance(m, VanillaNet)
        ]
        if not found:
            raise RuntimeError(f'{type(self).__name__}: the model has no '
                               'VanillaNet module to schedule')
        return found

    def _set(self, runner, value: float) -> None:
        for backbone in self._backbones(runner):
            backbone.act_learn = value
        # not resumed from checkpoints: it is derived from the counter
        runner.message_hub.update_scalar(
            'train/act_learn', value, resumed=False)

    def _starts_from_pretrained(self, runner) -> bool:
        model = runner.model.module if is_model_wrapper(
            runner.model) else runner.model
        for backbone in model.modules():
            if not isinstance(backbone, VanillaNet):
                continue
            cfgs = backbone.init_cfg
            cfgs = cfgs if isinstance(cfgs, list) else [cfgs]
            if any(
                    isinstance(c, dict) and c.get('type') == 'Pretrained'
                    for c in cfgs):
                return True
        return bool(getattr(runner, '_load_from',
                            None)) and not getattr(runner, '_resume', False)

    # ------------------------------------------------------------------
    def before_train(self, runner) -> None:
        self._backbones(runner)  # fail early on a model without VanillaNet
        if self.by_epoch and isinstance(
                getattr(runner, 'train_loop', None), IterBasedTrainLoop):
            raise ValueError(
                f'{type(self).__name__}: by_epoch=True needs an epoch-based '
                'train loop (the epoch never advances in IterBasedTrainLoop)'
                '; use by_epoch=False with decay_iters')
        self.active = not (self.skip_pretrained
                           and self._starts_from_pretrained(runner))
        if not self.active:
            print_log(
                f'{type(self).__name__}: training starts from pretrained '
                'weights (trained to act_learn=1); the deep-training '
                'schedule is off',
                logger='current')
            return
        self._set(runner, self.value_at(self._progress(runner)))

    def before_train_epoch(self, runner) -> None:
        if self.active and self.by_epoch:
            value = self.value_at(self._progress(runner))
            self._set(runner, value)
            print_log(
                f'{type(self).__name__}: epoch {runner.epoch}, '
                f'act_learn {value:.4f}',
                logger='current')

    def before_train_iter(self,
                          runner,
                          batch_idx: int,
                          data_batch=None) -> None:
        if self.active and not self.by_epoch:
            self._set(runner, self.value_at(self._progress(runner)))

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        """Record the slope so evaluating the checkpoint uses it too."""
        backbones = self._backbones(runner)
        checkpoint.setdefault('meta', {})[META_KEY] = backbones[0].act_learn

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        """Restore the recorded slope (training recomputes it anyway)."""
        value = checkpoint.get('meta', {}).get(META_KEY)
        if value is not None:
            for backbone in self._backbones(runner):
                if not backbone.deploy:
                    backbone.act_learn = value
