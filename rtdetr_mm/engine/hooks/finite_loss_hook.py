"""Stop training at the first non-finite loss, naming the loss terms.

mmdet's ``CheckInvalidLossHook`` looks at the total loss every 50 iterations
and fails with "loss become infinite or NaN!". On a multi-day run the user
needs to know which term went wrong and when, before a checkpoint of the
corrupted weights is written: this subclass checks every iteration (by
default), before the checkpoint hook runs, and names every non-finite term.
"""
import math
from typing import Optional

import torch
from mmdet.engine.hooks import CheckInvalidLossHook
from mmdet.registry import HOOKS


@HOOKS.register_module()
class FiniteLossHook(CheckInvalidLossHook):
    """Raise ``FloatingPointError`` when a logged loss is NaN or inf.

    Args:
        interval (int): Check every ``interval`` training iterations.
            Defaults to 1 (the log variables are already on the host).
    """
    priority = 'VERY_HIGH'  # before CheckpointHook (VERY_LOW) saves

    def __init__(self, interval: int = 1) -> None:
        super().__init__(interval)

    def after_train_iter(self,
                         runner,
                         batch_idx: int,
                         data_batch: Optional[dict] = None,
                         outputs: Optional[dict] = None) -> None:
        if not outputs or not self.every_n_train_iters(runner, self.interval):
            return
        values = {
            name:
            value.detach().item() if torch.is_tensor(value) else float(value)
            for name, value in outputs.items() if 'loss' in name
        }
        bad = {k: v for k, v in values.items() if not math.isfinite(v)}
        if bad:
            terms = ', '.join(f'{name}={value}' for name, value in bad.items())
            raise FloatingPointError(
                f'non-finite loss at iteration {runner.iter + 1} (epoch '
                f'{runner.epoch + 1}): {terms}. Training stopped before '
                'saving these weights. Usual causes: a learning rate too high '
                'for the batch size (try --auto-scale-lr), fp16 overflow '
                '(drop --amp), degenerate boxes in the annotations.')
