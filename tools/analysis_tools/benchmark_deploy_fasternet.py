"""FasterNet backbone latency: training form vs deploy form, in one run.

    python tools/analysis_tools/benchmark_deploy_fasternet.py \
        [--archs t0 t1 t2 s m l] [--size 640] [--repeat 10] [--warmup 2] \
        [--threads N]

Each arch is built once with random weights and random BatchNorm statistics
(so the fusion is not a no-op), put in eval mode and deep-copied; the copy is
switched with ``switch_to_deploy()`` (PConv slicing + conv-BN fusion). The
two forms are timed alternately on the CPU, one image per forward, so that
load from other processes hits both alike; the table gives the medians, their
ratio (train form / deploy form, > 1 means the deploy form is faster) and the
largest difference between the two forms' outputs.
"""
import argparse
import copy

import torch
from torch import nn

from rtdetr_mm.models.backbones.fasternet import FasterNet
from _timing import time_pair  # noqa: E402  (this folder)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='FasterNet latency, train form vs switch_to_deploy()')
    parser.add_argument('--archs', nargs='+', default=['t0', 't1', 't2', 's'],
                        choices=list(FasterNet.arch_settings))
    parser.add_argument('--size', type=int, default=640,
                        help='square input size (divisible by 32)')
    parser.add_argument('--repeat', type=int, default=10,
                        help='timed forwards per form (median reported)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed forwards per form first')
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: torch decides)')
    return parser.parse_args(argv)


@torch.no_grad()
def randomize_batchnorms(model: nn.Module) -> nn.Module:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 1.5)
            module.weight.uniform_(0.5, 1.5)
            module.bias.normal_()
    return model


@torch.no_grad()
def measure(arch: str, image: torch.Tensor, repeat: int, warmup: int) -> dict:
    train_form = randomize_batchnorms(FasterNet(arch)).eval()
    deploy_form = copy.deepcopy(train_form)
    deploy_form.switch_to_deploy()
    forms = (train_form, deploy_form)
    max_diff = max((a - b).abs().max().item()
                   for a, b in zip(*(form(image) for form in forms)))
    train_s, deploy_s, _ = time_pair(lambda: train_form(image),
                                     lambda: deploy_form(image), repeat,
                                     warmup)
    train_ms, deploy_ms = train_s * 1e3, deploy_s * 1e3
    return dict(arch=arch, train_ms=train_ms, deploy_ms=deploy_ms,
                ratio=train_ms / deploy_ms, max_diff=max_diff)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = torch.rand(1, 3, args.size, args.size)
    print(f'FasterNet backbone, input 1x3x{args.size}x{args.size}, CPU, '
          f'{torch.get_num_threads()} threads, median of {args.repeat} '
          f'alternating runs per form (torch {torch.__version__})\n')
    print('| arch | train form (ms) | deploy form (ms) | ratio train/deploy '
          '| max abs diff |')
    print('| --- | ---: | ---: | ---: | ---: |')
    for arch in args.archs:
        row = measure(arch, image, args.repeat, args.warmup)
        print(f"| {row['arch']} | {row['train_ms']:.1f} | "
              f"{row['deploy_ms']:.1f} | {row['ratio']:.3f} | "
              f"{row['max_diff']:.1e} |", flush=True)


if __name__ == '__main__':
    main()
