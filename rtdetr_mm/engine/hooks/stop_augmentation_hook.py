"""StopAugmentationHook: D-FINE's second training stage."""
from typing import Optional, Sequence

from mmdet.engine.hooks import PipelineSwitchHook
from mmdet.registry import HOOKS
from mmengine.hooks import EMAHook
from mmengine.runner.checkpoint import _load_checkpoint


@HOOKS.register_module()
class StopAugmentationHook(PipelineSwitchHook):
    """From epoch ``switch_epoch`` on, train without strong augmentation.

    D-FINE (and RT-DETRv2) end training on plainly resized images: at the
    stop epoch the photometric distortion, zoom-out and IoU crop leave the
    pipeline and the batch multi-scale resize stops. This hook does that
    (mmdet's :class:`PipelineSwitchHook` swaps in the built pipeline less
    those transforms, as the official ``stop_epoch`` policy drops its ops;
    the data preprocessor's ``batch_augments`` are dropped), and optionally
    what the official D-FINE trainer adds at that epoch:

    * ``reload_best``: continue from the best checkpoint so far (the
      ``save_best`` of mmengine's ``CheckpointHook``): model, EMA and
      optimizer state; the epoch counter and learning-rate schedule go on.
      The official trainer does this (``best_stg1.pth``), and reloads it
      again whenever a later epoch does not beat the best validation AP.
      Off by default: it selects weights on the validation set, so the
      reported validation AP is no longer an unbiased estimate, and it needs
      validation every epoch. Only the reload at the stop epoch is
      implemented.
    * ``ema_momentum``: a new momentum (``1 - decay``) for the EMA. The
      official configs set a "restart decay" (0.9998 for X), but its
      ``ModelEMA`` computes the decay from the value given at construction,
      so the assignment does not change its training; None (the default)
      keeps the momentum, which is what the official code trains with.

    The switch also applies when training resumes after the stop epoch; the
    reload happens only at the stop epoch itself.

    Args:
        switch_epoch (int): First epoch (0-based) of the second stage.
        drop_transforms (Sequence[str]): Types of the transforms removed from
            the training pipeline. Defaults to RT-DETR's and D-FINE's strong
            augmentation: ``PhotoMetricDistortion``, ``Expand`` (zoom-out)
            and ``RandomApply`` (which wraps the IoU crop).
        stop_batch_augments (bool): Drop the data preprocessor's
            ``batch_augments`` (the multi-scale resize). Defaults to True.
        reload_best (bool): See above. Defaults to False.
        ema_momentum (float, optional): See above. Defaults to None.
    """

    def __init__(self,
                 switch_epoch: int,
                 drop_transforms: Sequence[str] = ('PhotoMetricDistortion',
                                                   'Expand', 'RandomApply'),
                 stop_batch_augments: bool = True,
                 reload_best: bool = False,
                 ema_momentum: Optional[float] = None) -> None:
        if not isinstance(switch_epoch, int) or switch_epoch < 0:
            raise ValueError('StopAugmentationHook: switch_epoch must be an '
                             f'int >= 0, got {switch_epoch!r}')
        if ema_momentum is not None and not 0 < ema_momentum < 1:
            raise ValueError('StopAugmentationHook: ema_momentum must be in '
                             f'(0, 1), got {ema_momentum!r}')
        # the stage-2 pipeline is made from the built one at the switch
        super().__init__(switch_epoch, switch_pipeline=[])
        self.drop_transforms = tuple(drop_transforms)
        self.stop_batch_augments = stop_batch_augments
        self.reload_best = reload_best
        self.ema_momentum = ema_momentum

    def before_train_epoch(self, runner) -> None:
        """Switch at the stop epoch (or on resuming after it)."""
        switching = runner.epoch >= self.switch_epoch and \
            not self._has_switched
        if switching:
            self.switch_pipeline = self._stage_two_pipeline(runner)
        super().before_train_epoch(runner)
        if not switching:
            return
        if self.reload_best and runner.epoch == self.switch_epoch:
            self._load_best(runner)
        model = getattr(runner.model, 'module', runner.model)
        if self.stop_batch_augments:
            model.data_preprocessor.batch_augments = None
        ema_hook = self._ema_hook(runner)
        if self.ema_momentum is not None and ema_hook is not None:
            ema_hook.ema_model.momentum = self.ema_momentum
        runner.logger.info(
            f'StopAugmentationHook: from epoch {runner.epoch} on, training '
            f'without {", ".join(self.drop_transforms)}' +
            (' and batch augments' if self.stop_batch_augments else '') +
            (f'; EMA momentum {self.ema_momentum}'
             if self.ema_momentum is not None and ema_hook else ''))

    def _stage_two_pipeline(self, runner) -> list:
        """The built training transforms less ``drop_transforms``."""
        dataset = runner.train_dataloader.dataset
        transforms = getattr(
            getattr(dataset, 'pipeline', None), 'transforms', None)
        if transforms is None:
            raise TypeError('StopAugmentationHook needs a training dataset '
                            'with a pipeline, got '
                            f'{type(dataset).__name__}')
        kept = [
            t for t in transforms
            if type(t).__name__ not in self.drop_transforms
        ]
        if len(kept) == len(transforms):
            raise ValueError(
                f'StopAugmentationHook: drop_transforms '
                f'{list(self.drop_transforms)} names none of the training '
                f'transforms {[type(t).__name__ for t in transforms]}')
        return kept

    @staticmethod
    def _ema_hook(runner) -> Optional[EMAHook]:
        return next((h for h in runner.hooks if isinstance(h, EMAHook)), None)

    def _load_best(self, runner) -> None:
        """Model, EMA and optimizer state of the best checkpoint."""
        path = runner.message_hub.get_info('best_ckpt')
        if path is None:
            raise RuntimeError(
                'StopAugmentationHook(reload_best=True) found no best '
                'checkpoint: set default_hooks.checkpoint.save_best (one '
                'metric, e.g. "coco/bbox_mAP") and validate before epoch '
                f'{self.switch_epoch}')
        checkpoint = _load_checkpoint(path, map_location='cpu')
        state = checkpoint['state_dict']
        ema_hook = self._ema_hook(runner)
        ema_state = checkpoint.get('ema_state_dict')
        model = getattr(runner.model, 'module', runner.model)
        if ema_hook is not None and ema_state is not None:
            # EMAHook saves the averaged weights as state_dict and the raw
            # ones under ema_state_dict['module.*']: swap them back
            raw = {k: ema_state[f'module.{k}'] for k in state}
            averaged = {f'module.{k}': v for k, v in state.items()}
            averaged['steps'] = ema_state['steps']
            model.load_state_dict(raw)
            ema_hook.ema_model.load_state_dict(averaged)
        else:
            model.load_state_dict(state)
        if 'optimizer' in checkpoint:
            runner.optim_wrapper.load_state_dict(checkpoint['optimizer'])
        runner.logger.info(
            f'StopAugmentationHook: continues from the best checkpoint so far '
            f'{path} (epoch {checkpoint.get("meta", {}).get("epoch")})')
