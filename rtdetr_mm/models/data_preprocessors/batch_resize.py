"""Batch multi-scale resize to sizes drawn from a list (D-FINE's scales)."""
import random
from typing import Sequence, Tuple

import torch
from mmdet.models.data_preprocessors import BatchSyncRandomResize
from mmdet.registry import MODELS
from mmengine.dist import barrier, broadcast


@MODELS.register_module()
class BatchRandomChoiceResize(BatchSyncRandomResize):
    """mmdet's :class:`BatchSyncRandomResize` with the square size drawn
    from ``scales`` (repeats weight a size) instead of uniformly from a
    range.

    D-FINE resizes each training batch to ``random.choice(scales)`` with
    ``scales = [480, 512, 544, 576, 608] + [640] * base_size_repeat +
    [672, 704, 736, 768, 800]``, so 640 is drawn most of the time (S: 20 of
    30). Like mmdet's class, the size is drawn on rank 0 and broadcast, the
    boxes are rescaled, and the interpolation is bilinear (D-FINE: nearest).

    Args:
        scales (Sequence[int]): Square sizes to draw from, each a multiple
            of ``size_divisor``.
        interval (int): Iterations between draws. Defaults to 1.
        size_divisor (int): Defaults to 32.
    """

    def __init__(self,
                 scales: Sequence[int],
                 interval: int = 1,
                 size_divisor: int = 32) -> None:
        scales = list(scales)
        if not scales or any(
                not isinstance(s, int) or s <= 0 or s % size_divisor
                for s in scales):
            raise ValueError(
                'BatchRandomChoiceResize: scales must be positive ints, '
                f'multiples of size_divisor={size_divisor}; got {scales}')
        super().__init__((min(scales), max(scales)), interval, size_divisor)
        self.scales = scales

    def _get_random_size(self, aspect_ratio: float,
                         device: torch.device) -> Tuple[int, int]:
        """(size, size) for ``size`` drawn on rank 0, the same on every
        rank. ``aspect_ratio`` is ignored: the sizes are square."""
        size = torch.zeros(1, dtype=torch.long, device=device)
        if self.rank == 0:
            size[0] = random.choice(self.scales)
        barrier()
        broadcast(size, 0)
        return int(size), int(size)
