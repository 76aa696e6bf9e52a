"""Latency of RIFormer before vs after ``switch_to_deploy()``, in one run.

    python tools/analysis_tools/benchmark_deploy_riformer.py \
        [--archs s12 s24 s36 m36 m48] [--shape 640] [--repeat 10] \
        [--warmup 2] [--device cpu|cuda] [--threads N] \
        [--config configs/rtdetr_riformer_s12_coco.py]

For each arch the backbone is built once (random weights, a random image in
[0, 1]), copied, and the copy switched to deploy form; the two are then timed
alternately (so load on a shared machine hits both alike) and the table
prints the median latencies, the median of the per-pair ratios (speed-up) and
the largest output difference.
``--config`` adds the whole detector of an RT-DETR config (random weights,
``predict`` mode with post-processing, boxes in pixels), switched with the
detector's ``switch_to_deploy()`` (backbone and neck).
"""
import argparse
import copy
import os.path as osp
from typing import List

import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

import rtdetr_mm  # noqa: F401  (registers the modules)
from rtdetr_mm.models.backbones import RIFormer
from _timing import time_pair  # noqa: E402  (this folder)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='RIFormer latency before/after switch_to_deploy()')
    parser.add_argument('--archs', nargs='+', default=['s12'],
                        choices=sorted(RIFormer.arch_settings),
                        help='backbone variants to time')
    parser.add_argument('--shape', type=int, nargs='+', default=[640],
                        help='input size: H (square) or H W')
    parser.add_argument('--batch-size', type=int, default=1)
    parser.add_argument('--repeat', type=int, default=10,
                        help='timed forwards per form (median reported)')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int,
                        help='torch CPU threads (default: torch decides)')
    parser.add_argument('--config',
                        help='an RT-DETR config: also time the detector')
    return parser.parse_args(argv)


def num_params(model: nn.Module) -> float:
    return sum(p.numel() for p in model.parameters()) / 1e6


def max_difference(a, b) -> float:
    return max((x - y).abs().max().item() for x, y in zip(a, b))


def bench_backbone(arch: str, inputs: torch.Tensor, args,
                   device: torch.device) -> list:
    model = RIFormer(arch=arch).to(device).eval()
    fused = copy.deepcopy(model)
    fused.switch_to_deploy()
    with torch.no_grad():
        diff = max_difference(model(inputs), fused(inputs))
    before, after, ratio = time_pair(lambda: model(inputs),
                                     lambda: fused(inputs), args.repeat,
                                     args.warmup, device)
    return [f'RIFormer-{arch}', f'{num_params(model):.2f}',
            f'{num_params(fused):.2f}', f'{before * 1e3:.1f}',
            f'{after * 1e3:.1f}', f'{ratio:.3f}', f'{diff:.1e}']


def bench_detector(config: str, inputs: torch.Tensor, args,
                   device: torch.device) -> list:
    cfg = Config.fromfile(config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.backbone.pop('init_cfg', None)  # random weights, no download
    model = MODELS.build(cfg.model).to(device).eval()
    fused = copy.deepcopy(model)
    fused.switch_to_deploy()  # backbone and neck
    height, width = inputs.shape[-2:]
    meta = dict(img_shape=(height, width), ori_shape=(height, width),
                pad_shape=(height, width), batch_input_shape=(height, width),
                scale_factor=(1.0, 1.0))
    samples = [DetDataSample(metainfo=meta) for _ in range(len(inputs))]

    def run(detector):
        return detector(inputs, copy.deepcopy(samples), mode='predict')

    with torch.no_grad():
        results = [run(model), run(fused)]
    diff = max_difference(*[
        [r.pred_instances.bboxes for r in rs] +
        [r.pred_instances.scores for r in rs] for rs in results])
    before, after, ratio = time_pair(lambda: run(model), lambda: run(fused),
                                     args.repeat, args.warmup, device)
    return [f'RT-DETR {osp.basename(config)}',
            f'{num_params(model):.2f}', f'{num_params(fused):.2f}',
            f'{before * 1e3:.1f}', f'{after * 1e3:.1f}',
            f'{ratio:.3f}', f'{diff:.1e}']


def print_table(header: list, rows: List[list]) -> None:
    widths = [max(len(str(r[i])) for r in [header] + rows)
              for i in range(len(header))]
    line = '+' + '+'.join('-' * (w + 2) for w in widths) + '+'
    print(line)
    for i, row in enumerate([header] + rows):
        print('| ' + ' | '.join(str(c).rjust(w) for c, w in zip(row, widths))
              + ' |')
        if i == 0:
            print(line)
    print(line)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    height, width = (args.shape * 2)[:2]
    torch.manual_seed(0)
    inputs = torch.rand(args.batch_size, 3, height, width, device=device)
    rows = [bench_backbone(arch, inputs, args, device) for arch in args.archs]
    if args.config:
        rows.append(bench_detector(args.config, inputs, args, device))
    print(f'input {args.batch_size}x3x{height}x{width}, device {device}, '
          f'{torch.get_num_threads()} threads, medians of {args.repeat} '
          'back-to-back pairs')
    print_table(['model', 'params (M)', 'deploy params (M)', 'latency (ms)',
                 'deploy latency (ms)', 'speed-up', 'max |diff|'], rows)


if __name__ == '__main__':
    main()
