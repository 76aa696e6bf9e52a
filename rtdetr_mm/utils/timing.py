"""Latency of several ways to do the same work, measured in alternation.

The runs take turns within each round (round ``r`` starts at run ``r``, so
none always goes first); ratios are taken per round, so load from other
processes that drifts between rounds cancels out of them.
"""
import statistics
import time
from dataclasses import dataclass
from typing import Callable, Dict, Optional

import torch


@dataclass
class Timings:
    """``seconds``: median seconds per run; ``speedups``: per run, the
    median over rounds of ``time(reference) / time(run)`` (> 1: faster)."""
    seconds: Dict[str, float]
    speedups: Dict[str, float]


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU)."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def time_round_robin(runs: Dict[str, Callable[[], object]],
                     repeat: int,
                     warmup: int = 1,
                     device: torch.device = torch.device('cpu'),
                     reference: Optional[str] = None) -> Timings:
    """Time each callable of ``runs`` ``repeat`` times, round-robin.

    Args:
        runs: name -> callable doing one unit of work (e.g. one forward).
        repeat: timed rounds; every run goes once per round.
        warmup: untimed rounds first.
        device: synchronized around each call (CUDA is asynchronous).
        reference: the run ``speedups`` are relative to (none if None).
    """
    if repeat < 1:
        raise ValueError(f'repeat must be at least 1, got {repeat}')
    if reference is not None and reference not in runs:
        raise ValueError(f'reference {reference!r} is not one of the runs '
                         f'{list(runs)}')
    names = list(runs)
    for _ in range(warmup):
        for name in names:
            runs[name]()
    times: Dict[str, list] = {name: [] for name in names}
    for index in range(repeat):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            synchronize(device)
            start = time.perf_counter()
            runs[name]()
            synchronize(device)
            times[name].append(time.perf_counter() - start)
    speedups = {}
    if reference is not None:
        speedups = {
            name:
            statistics.median(ref / t
                              for ref, t in zip(times[reference], times[name]))
            for name in names if name != reference
        }
    return Timings({
        name: statistics.median(t)
        for name, t in times.items()
    }, speedups)
