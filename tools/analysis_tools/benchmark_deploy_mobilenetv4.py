"""MobileNetV4 backbone latency before and after BatchNorm folding.

    python tools/analysis_tools/benchmark_deploy_mobilenetv4.py \
        [--archs conv_small hybrid_medium ...] [--height 640 --width 640] \
        [--repeat 10] [--warmup 2] [--threads N]

For each arch the backbone (default outputs, strides 8/16/32) is built with
random weights, random BatchNorm affines, BatchNorm statistics estimated on
a random batch and unit layer scales (so the folding is not a no-op), put
in eval mode and deep-copied; the copy is switched with
``switch_to_deploy()``. Both forms run alternately on the CPU, batch 1, so
background load hits both alike. The table gives the median
latencies, the ratio train/deploy (> 1: deploy is faster), the BatchNorm
layers left after folding and the largest output difference relative to the
output's magnitude.
"""
import argparse
import copy

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from rtdetr_mm.models.backbones.mobilenetv4 import MobileNetV4
from _timing import time_pair  # noqa: E402  (this folder)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='MobileNetV4 latency, train form vs switch_to_deploy()')
    parser.add_argument('--archs', nargs='+',
                        default=['conv_small', 'conv_medium', 'conv_large',
                                 'hybrid_medium', 'hybrid_large'],
                        choices=list(MobileNetV4.arch_settings))
    parser.add_argument('--height', type=int, default=640)
    parser.add_argument('--width', type=int, default=640)
    parser.add_argument('--repeat', type=int, default=10,
                        help='timed forwards per form (median reported)')
    parser.add_argument('--warmup', type=int, default=2,
                        help='untimed forwards per form first')
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: torch decides)')
    return parser.parse_args(argv)


@torch.no_grad()
def build_train_form(arch: str) -> MobileNetV4:
    """Random weights; BN statistics estimated on one random batch, as after
    training, so activations stay in a realistic range (with arbitrary
    statistics they grow block after block and the attention softmax turns
    into an argmax that float rounding flips)."""
    model = MobileNetV4(arch)
    for module in model.modules():
        if isinstance(module, _BatchNorm):
            module.weight.uniform_(0.5, 1.5)
            module.bias.uniform_(-0.2, 0.2)
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the batch
    for name, param in model.named_parameters():
        if name.endswith('layer_scale.gamma'):
            param.fill_(1.0)
    model.train()(torch.rand(2, 3, 256, 256))
    return model.eval()


@torch.no_grad()
def measure(arch: str, image: torch.Tensor, repeat: int, warmup: int) -> dict:
    train_form = build_train_form(arch)
    deploy_form = copy.deepcopy(train_form)
    deploy_form.switch_to_deploy()
    forms = (train_form, deploy_form)
    rel_diff = max((a - b).abs().max().item() / a.abs().max().item()
                   for a, b in zip(train_form(image), deploy_form(image)))
    train_s, deploy_s, _ = time_pair(lambda: train_form(image),
                                     lambda: deploy_form(image), repeat,
                                     warmup)
    train_ms, deploy_ms = train_s * 1e3, deploy_s * 1e3
    norms = [sum(isinstance(m, _BatchNorm) for m in form.modules())
             for form in forms]
    return dict(arch=arch, train_ms=train_ms, deploy_ms=deploy_ms,
                ratio=train_ms / deploy_ms, norms=norms, rel_diff=rel_diff)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    image = torch.rand(1, 3, args.height, args.width)
    print(f'MobileNetV4 backbone, input 1x3x{args.height}x{args.width}, CPU, '
          f'{torch.get_num_threads()} threads, median of {args.repeat} '
          f'alternating runs per form (torch {torch.__version__})\n')
    print('| arch | train form (ms) | deploy form (ms) | ratio | BatchNorms '
          'before -> after | max rel. diff |')
    print('| --- | ---: | ---: | ---: | ---: | ---: |')
    for arch in args.archs:
        row = measure(arch, image, args.repeat, args.warmup)
        print(f"| {row['arch']} | {row['train_ms']:.1f} | "
              f"{row['deploy_ms']:.1f} | {row['ratio']:.3f} | "
              f"{row['norms'][0]} -> {row['norms'][1]} | "
              f"{row['rel_diff']:.1e} |", flush=True)


if __name__ == '__main__':
    main()
