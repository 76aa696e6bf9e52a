"""Forward latency and training-step time of an RT-DETR config.

    python tools/analysis_tools/benchmark_rtdetr.py \
        configs/rtdetr_r18vd_coco.py
    python tools/analysis_tools/benchmark_rtdetr.py CONFIG --size 640 \
        --batch 1 --train-batch 2 --repeat 5 --device cpu --deploy

Random weights and inputs (timings do not depend on the values); the
training step is a loss forward, backward and AdamW step on images with
random boxes, with the config's denoising and without its multi-scale batch
augment (so the size stays fixed). Prints a table (median and min of the
repeats).
"""
import argparse
import statistics
import time

import torch
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import rtdetr_mm  # noqa: F401  (registers the modules)
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('config', nargs='?',
                        default='configs/rtdetr_r18vd_coco.py')
    parser.add_argument('--size', type=int, default=640, help='square input')
    parser.add_argument('--batch', type=int, default=1,
                        help='images per forward')
    parser.add_argument('--train-batch', type=int, default=2,
                        help='images per training step (0 skips training)')
    parser.add_argument('--boxes', type=int, default=8,
                        help='ground-truth boxes per training image')
    parser.add_argument('--warmup', type=int, default=2)
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--threads', type=int, default=0,
                        help='torch threads on CPU (0: torch default)')
    parser.add_argument('--deploy', action='store_true',
                        help='time the forward after switch_to_deploy()')
    return parser.parse_args(argv)


def samples(n, size, boxes, device):
    out = []
    for _ in range(n):
        s = DetDataSample(metainfo=dict(
            img_shape=(size, size), ori_shape=(size, size),
            scale_factor=(1., 1.), batch_input_shape=(size, size)))
        xy = torch.rand(boxes, 2) * size * 0.6
        wh = torch.rand(boxes, 2) * size * 0.3 + 8
        s.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1),
            labels=torch.randint(0, 80, (boxes, ))).to(device)
        out.append(s)
    return out


def timeit(fn, warmup, repeat, device):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device.startswith('cuda'):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times), min(times)


def main(argv=None):
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = Config.fromfile(args.config)
    init_default_scope(cfg.get('default_scope', 'mmdet'))
    cfg.model.data_preprocessor.batch_augments = None
    cfg.model.backbone.init_cfg = None
    model = MODELS.build(cfg.model).to(args.device)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    rows = []

    if args.train_batch > 0:
        model.train()
        opt = torch.optim.AdamW(
            [p for p in model.parameters() if p.requires_grad], lr=1e-4)
        x = torch.rand(args.train_batch, 3, args.size, args.size,
                       device=args.device)
        data = samples(args.train_batch, args.size, args.boxes, args.device)

        def train_step():
            losses = model.loss(x, data)
            loss = sum(v for k, v in losses.items() if 'loss' in k)
            opt.zero_grad()
            loss.backward()
            opt.step()

        med, best = timeit(train_step, 1, args.repeat, args.device)
        rows.append((f'train step (batch {args.train_batch})', med, best))

    model.eval()
    if args.deploy:
        model.switch_to_deploy()
    x = torch.rand(args.batch, 3, args.size, args.size, device=args.device)
    data = samples(args.batch, args.size, 0, args.device)

    @torch.no_grad()
    def forward():
        model.predict(x, data)

    med, best = timeit(forward, args.warmup, args.repeat, args.device)
    rows.insert(0, (f'forward + post-process (batch {args.batch}'
                    f'{", deploy" if args.deploy else ""})', med, best))

    print(f'{args.config}: {params:.2f} M parameters, input '
          f'{args.size}x{args.size}, device {args.device}, '
          f'{torch.get_num_threads()} threads')
    width = max(len(r[0]) for r in rows)
    print(f'{"":{width}}  median (s)  min (s)')
    for name, med, best in rows:
        print(f'{name:{width}}  {med:10.3f}  {best:7.3f}')


if __name__ == '__main__':
    main()
