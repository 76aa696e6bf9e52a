"""Timing shared by the benchmark scripts of this folder.

Import it as ``from _timing import time_pair``: scripts run from here put
it on the path.
"""
import statistics
import time
from typing import Callable, List, Tuple

import torch


def synchronize(device: torch.device) -> None:
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


@torch.no_grad()
def time_pair(run_a: Callable[[], object], run_b: Callable[[], object],
              repeat: int, warmup: int,
              device: torch.device = torch.device('cpu')
              ) -> Tuple[float, float, float]:
    """Median seconds of ``run_a`` and ``run_b`` and median ratio a/b.

    The two run back to back, in alternating order, ``repeat`` times; the
    ratio is taken per pair, so load that drifts between pairs cancels.
    """
    for _ in range(warmup):
        run_a()
        run_b()
    times: List[List[float]] = [[], []]
    for index in range(repeat):
        order = (0, 1) if index % 2 == 0 else (1, 0)
        for slot in order:
            synchronize(device)
            start = time.perf_counter()
            (run_a, run_b)[slot]()
            synchronize(device)
            times[slot].append(time.perf_counter() - start)
    ratios = [a / b for a, b in zip(*times)]
    return (statistics.median(times[0]), statistics.median(times[1]),
            statistics.median(ratios))
