"""VanillaNet backbone latency: training form vs deploy form, in one run.

    python tools/analysis_tools/benchmark_deploy_vanillanet.py \
        [--archs 5 6 ...] [--size 640] [--repeat 5] [--warmup 1] \
        [--threads N] [--act-learn-train 1.0]

Each arch is built with random weights and random BatchNorm statistics (so
BN folding is not a no-op), at ``act_learn == 1`` (the end of deep
training, the only slope at which the fused form is exact), put in eval mode
and deep-copied; the copy is switched with ``switch_to_deploy()`` (BN folded
into every conv, the two convs of each layer merged). Both forms run
alternately on the CPU, batch 1, so background load hits both alike. The
table gives the median latencies, the ratio train/deploy (> 1: deploy is
faster) and the largest output difference relative to the output's
magnitude. ``--act-learn-train 0`` times the training form as it runs at the
start of deep training (with the leaky-ReLU active); the parity column is
then not meaningful and is left out.
"""
import argparse
import copy

import torch
from torch import nn

from rtdetr_mm.models.backbones.vanillanet import VanillaNet
from _timing import time_pair  # noqa: E402  (this folder)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='VanillaNet latency, train form vs switch_to_deploy()')
    parser.add_argument('--archs', nargs='+', default=['5'],
                        choices=list(VanillaNet.arch_settings))
    parser.add_argument('--size', type=int, default=640,
                        help='square input size (divisible by 32)')
    parser.add_argument('--repeat', type=int, default=5,
                        help='timed forwards per form (median reported)')
    parser.add_argument('--warmup', type=int, default=1,
                        help='untimed forwards per form first')
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: torch decides)')
    parser.add_argument('--act-learn-train', type=float, default=1.0,
                        help='act_learn of the timed training form')
    return parser.parse_args(argv)


@torch.no_grad()
def randomize_batchnorms(model: nn.Module) -> None:
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            module.running_mean.normal_(0, 0.1)
            module.running_var.uniform_(0.5, 1.5)
            module.weight.uniform_(0.5, 1.5)
            module.bias.normal_(0, 0.1)


@torch.no_grad()
@torch.no_grad()
def benchmark(arch: str, args) -> dict:
    torch.manual_seed(0)
    train = VanillaNet(arch=arch, out_indices=(1, 2, 3))
    randomize_batchnorms(train)
    train.eval()
    deploy = copy.deepcopy(train)
    deploy.switch_to_deploy()
    x = torch.randn(1, 3, args.size, args.size)

    parity = max(((a - b).abs().max() / b.abs().max()).item()
                 for a, b in zip(deploy(x), train(x)))
    train.act_learn = args.act_learn_train
    train_s, deploy_s, _ = time_pair(lambda: train(x), lambda: deploy(x),
                                     args.repeat, args.warmup)
    train_ms, deploy_ms = train_s * 1e3, deploy_s * 1e3
    return dict(
        arch=arch,
        params_train=sum(p.numel() for p in train.parameters()) / 1e6,
        params_deploy=sum(p.numel() for p in deploy.parameters()) / 1e6,
        train_ms=train_ms,
        deploy_ms=deploy_ms,
        ratio=train_ms / deploy_ms,
        parity=parity if args.act_learn_train == 1 else None)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f'VanillaNet backbone, 1x3x{args.size}x{args.size}, CPU, '
          f'{torch.get_num_threads()} threads, median of {args.repeat} '
          f'(act_learn of the train form: {args.act_learn_train})')
    header = ('| arch | params train (M) | params deploy (M) | train (ms) | '
              'deploy (ms) | train/deploy | max rel. diff |')
    print(header)
    print('|' + '---|' * 7)
    for arch in args.archs:
        r = benchmark(arch, args)
        parity = '-' if r['parity'] is None else f'{r["parity"]:.1e}'
        print(f'| {r["arch"]} | {r["params_train"]:.2f} | '
              f'{r["params_deploy"]:.2f} | {r["train_ms"]:.1f} | '
              f'{r["deploy_ms"]:.1f} | {r["ratio"]:.2f}x | {parity} |')


if __name__ == '__main__':
    main()
