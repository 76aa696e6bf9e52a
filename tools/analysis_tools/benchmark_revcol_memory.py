"""Peak training memory and step time of RevCol: reversible vs plain.

Builds RevCol with the tiny widths and depths and a growing number of
columns, then measures one training step (forward + backward of the sum of
the outputs) with ``save_memory`` on (reversible autograd) and off (plain
autograd, every activation stored). The reversible path keeps only each
column's four outputs, so its peak should grow far more slowly with the
number of columns than the plain path's.

Peak memory is the most memory the step holds above what existed before it
(parameters and their already-allocated gradients excluded): on CUDA from
the caching allocator's statistics, on CPU from the allocation events of
``torch.profiler`` (``profile_memory=True``). Step time (wall
and process CPU seconds) is the median of ``--repeat`` steps run without
the profiler, after the profiled one.

Example::

    python tools/analysis_tools/benchmark_revcol_memory.py \\
        --columns 2 4 8 16 --input-size 224 --batch-size 1
"""
import argparse
import statistics
import time
from typing import Callable, Tuple

import torch
from torch.profiler import ProfilerActivity, profile

from rtdetr_mm.models.backbones.revcol import RevCol

MIB = 2**20


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--columns', type=int, nargs='+',
                        default=[2, 4, 8, 16], help='numbers of columns')
    parser.add_argument('--arch', default='tiny',
                        choices=sorted(RevCol.arch_settings),
                        help='widths and depths to use (columns overridden)')
    parser.add_argument('--input-size', type=int, default=224)
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=2,
                        help='timed steps per setting (median reported)')
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=None,
                        help='torch CPU threads (default: torch default)')
    return parser.parse_args()


def peak_bytes(step: Callable[[], None], device: torch.device) -> int:
    """Most bytes held during ``step()`` above the level before it."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with profile(activities=[ProfilerActivity.CPU],
                 profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes())
                    for e in prof.profiler.kineto_results.events()
                    if e.name() == '[memory]')
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak


def measure(model: RevCol, x: torch.Tensor, repeat: int
            ) -> Tuple[float, float, float]:
    """Peak MiB, median wall seconds and median process CPU seconds of one
    forward + backward (CPU seconds sum all threads; on a shared machine
    they vary less with the load than wall time)."""
    for param in model.parameters():  # allocated before, not counted
        param.grad = torch.zeros_like(param)

    def step():
        model.zero_grad(set_to_none=False)
        sum(out.sum() for out in model(x)).backward()
        if x.device.type == 'cuda':
            torch.cuda.synchronize(x.device)

    peak = peak_bytes(step, x.device)  # also the warm-up of the timing
    times, cpu_times = [], []
    for _ in range(repeat):
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    return (peak / MIB, statistics.median(times),
            statistics.median(cpu_times))


def main() -> None:
    args = parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    settings = dict(RevCol.arch_settings[args.arch], drop_path_rate=0.)
    x = torch.randn(args.batch_size, 3, args.input_size, args.input_size,
                    device=device)
    print(f'RevCol-{args.arch} widths {settings["channels"]}, depths '
          f'{settings["layers"]}; one training step on '
          f'{args.batch_size}x3x{args.input_size}x{args.input_size}, '
          f'{device}, {torch.get_num_threads()} threads')
    header = ('| columns | params (M) | plain peak (MiB) | reversible peak '
              '(MiB) | memory saved | plain step (s) | reversible step (s) '
              '| plain CPU (s) | reversible CPU (s) |')
    print(header)
    print('|' + '---|' * (header.count('|') - 1))
    for num_columns in args.columns:
        torch.manual_seed(0)
        model = RevCol(arch=dict(settings, num_columns=num_columns))
        model.to(device).train()
        results = {}
        for save_memory in (False, True):
            model.save_memory = save_memory
            results[save_memory] = measure(model, x, args.repeat)
        params = sum(p.numel() for p in model.parameters()) / 1e6
        (plain_mem, plain_s, plain_cpu), (rev_mem, rev_s, rev_cpu) = \
            results[False], results[True]
        print(f'| {num_columns} | {params:.1f} | {plain_mem:.1f} | '
              f'{rev_mem:.1f} | {1 - rev_mem / plain_mem:.0%} | '
              f'{plain_s:.2f} | {rev_s:.2f} | {plain_cpu:.2f} | '
              f'{rev_cpu:.2f} |', flush=True)
        del model


if __name__ == '__main__':
    main()
