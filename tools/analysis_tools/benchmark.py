"""Benchmark RT-DETR configs: size, GFLOPs, latency and parity per form.

    python tools/analysis_tools/benchmark.py CONFIG [CONFIG ...] \
        [--shape H W] [--batch N] [--device cpu|cuda] \
        [--modes train-form deploy onnxruntime train-step memory toy-map] \
        [--repeat N] [--warmup N] [--relative-to CONFIG] [--json FILE] \
        [--backbone-only] [--threads N] [--cfg-options KEY=VALUE ...]

Prints one markdown table, one row per config; ``--json`` writes the same
numbers (unrounded) with the run's settings. Every row has the parameters
of the train form and of the deploy form (``switch_to_deploy()``) in
millions and the GFLOPs of one image at ``--shape``, then per mode:

* ``train-form``, ``deploy``, ``onnxruntime``: median latency (ms) of one
  batch, pixels in, top-K detections out, all through
  :class:`End2EndDetector` (uint8 RGB (N, 3, H, W) and (N, 2) original
  sizes -> labels, boxes, scores): eager train form, eager deploy form, and
  the deploy form exported with ``export_onnx`` run by ONNX Runtime (CPU,
  as many threads as torch). The modes run in alternation, round-robin
  within each repeat; the speed-ups over the train form are medians of
  per-round ratios. Parity: the largest absolute difference of the top-K
  scores (rank by rank) and boxes (in pixels, rank by rank but matched
  across float ties of the score) from the train form.
* ``train-step``: median time of a loss forward + backward + AdamW step on
  the batch with 8 random boxes per image (timed on its own).
* ``memory`` (RevCol backbones): peak memory and time of one training step
  of the backbone (forward, backward of the sum of its outputs) with the
  reversible path (``save_memory=True``) and without. Peak: the most memory
  held above the level before the step, on CUDA from the allocator's
  statistics, on the CPU from ``torch.profiler``'s allocation events.
* ``toy-map``: trains the (toy) config with ``tools/train.py`` in a
  subprocess and reports its final COCO bbox mAP; a first row scores a
  detector that guesses boxes, the floor a trained model must clear.

``--backbone-only`` does the same for ``model.backbone`` alone (modes
``train-form``, ``deploy``, ``memory``; parity: the largest difference of
the feature maps). ``--relative-to CONFIG`` adds each latency divided by
that config's, measured in the same run.

Weights are random, made realistic with
:func:`rtdetr_mm.testing.trained_like` (BatchNorm statistics calibrated on
the four :func:`check_images` resized to the shape); the timed batch is
those images, repeated up to ``--batch``. ``init_cfg`` of the backbone is
dropped (nothing is downloaded).

GFLOPs of the train form are twice the multiply-adds that mmengine's
:class:`FlopAnalyzer` (fvcore-style) counts, the convention of the RT-DETR
paper's figures (at 640: R18vd 61.9 here vs 60 published, R50vd 138.8 vs
136): convolutions, linear layers, the attention matmuls (``bmm`` of
``nn.MultiheadAttention``; ``scaled_dot_product_attention``, a handle this
tool adds), norms, upsampling, and the deformable attention's
``grid_sample`` at 5 multiply-adds per sampled value (4 for the bilinear
interpolation, 1 for its attention weight; this tool's handle, mmengine
counts 4). Not counted: other element-wise ops, activations, softmax,
top-K.
"""
import argparse
import contextlib
import copy
import datetime
import io
import json
import math
import os.path as osp
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence

import numpy as np
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.analysis import FlopAnalyzer
from mmengine.analysis.jit_handles import get_shape
from mmengine.config import DictAction
from mmengine.structures import InstanceData
from torch import nn
from torch.profiler import ProfilerActivity, profile

from rtdetr_mm.deploy import End2EndDetector, export_onnx, load_config
from rtdetr_mm.deploy.onnx_check import (check_images, compare, resize_batch,
                                         torch_predict)
from rtdetr_mm.deploy.onnx_export import check_input_shape
from rtdetr_mm.models.backbones.revcol import RevCol
from rtdetr_mm.testing import trained_like
from rtdetr_mm.utils.timing import time_round_robin

REPO = Path(__file__).resolve().parents[2]
INFERENCE_MODES = ('train-form', 'deploy', 'onnxruntime')
MODES = INFERENCE_MODES + ('train-step', 'memory', 'toy-map')
DETECTOR_ONLY_MODES = ('onnxruntime', 'train-step', 'toy-map')
RANDOM_BOXES_PER_IMAGE = 100
MIB = 2**20


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('configs', nargs='+', metavar='CONFIG')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        default=[640, 640],
        metavar=('H', 'W'),
        help='input size, multiples '
        'of 32')
    parser.add_argument(
        '--batch',
        type=int,
        default=1,
        help='images per forward / training step')
    parser.add_argument('--device', default='cpu', choices=['cpu', 'cuda'])
    parser.add_argument(
        '--modes', nargs='+', choices=MODES, default=list(INFERENCE_MODES))
    parser.add_argument(
        '--repeat',
        type=int,
        default=5,
        help='timed rounds (medians reported)')
    parser.add_argument(
        '--warmup', type=int, default=1, help='untimed rounds first')
    parser.add_argument(
        '--relative-to',
        metavar='CONFIG',
        help='one of the CONFIGs: latencies relative to it')
    parser.add_argument('--json', metavar='FILE', help='also write JSON')
    parser.add_argument(
        '--backbone-only',
        action='store_true',
        help='benchmark model.backbone alone')
    parser.add_argument(
        '--threads',
        type=int,
        help='torch CPU threads (default: torch decides)')
    parser.add_argument(
        '--cfg-options',
        nargs='+',
        action=DictAction,
        help='override config settings (key=value)')
    toy = parser.add_argument_group('toy-map mode')
    toy.add_argument(
        '--epochs', type=int, help='override train_cfg.max_epochs')
    toy.add_argument('--work-root', default='work_dirs/toy_map')
    toy.add_argument(
        '--data-root',
        default='data/toy_shapes',
        help="the configs' toy set (generated if absent)")
    args = parser.parse_args(argv)
    for config in args.configs:
        if not osp.isfile(config):
            parser.error(f'{config}: no such config file (the configs are '
                         'under configs/, e.g. configs/rtdetr_r18vd_coco.py)')
    if args.relative_to and args.relative_to not in args.configs:
        parser.error(f'--relative-to {args.relative_to} is not one of the '
                     f'configs {args.configs}')
    if args.backbone_only:
        bad = [m for m in args.modes if m in DETECTOR_ONLY_MODES]
        if bad:
            parser.error(f'--backbone-only cannot run mode(s) {bad}: they '
                         'need the whole detector')
    if args.device == 'cuda' and 'onnxruntime' in args.modes:
        parser.error('mode onnxruntime runs on the CPU: use --device cpu')
    if args.repeat < 1 or args.batch < 1:
        parser.error('--repeat and --batch must be at least 1')
    try:
        check_input_shape(args.shape)
    except ValueError as error:
        parser.error(str(error))
    return args


# --- measurements -------------------------------------------------------


def num_params(model: nn.Module) -> float:
    """Parameters in millions."""
    return sum(p.numel() for p in model.parameters()) / 1e6


def _grid_sample_flops(inputs, outputs) -> int:
    """(N, C, Hout, Wout) samples: 4 for the bilinear interpolation + 1
    for the deformable attention's weight of each."""
    return 5 * math.prod(get_shape(outputs[0]))


def _sdpa_flops(inputs, outputs) -> int:
    """q (..., L, E), k (..., S, E), v (..., S, Ev): q k^T and attn v."""
    query, key, value = (get_shape(x) for x in inputs[:3])
    return math.prod(query[:-1]) * key[-2] * (query[-1] + value[-1])


def count_gflops(model: nn.Module, inputs: tuple) -> float:
    """GFLOPs of ``model(*inputs)``: 2 x 1e-9 x the multiply-adds counted
    (see the module doc)."""
    analyzer = FlopAnalyzer(model, inputs)
    analyzer.set_op_handle(
        **{
            'aten::grid_sampler': _grid_sample_flops,
            'aten::scaled_dot_product_attention': _sdpa_flops
        })
    analyzer.unsupported_ops_warnings(False)
    analyzer.uncalled_modules_warnings(False)
    with torch.no_grad():
        return 2 * analyzer.total() / 1e9


def max_difference(a: Sequence, b: Sequence) -> float:
    """Largest absolute element difference of paired tensors/arrays."""
    return max(
        float(
            np.abs(np.asarray(x, np.float64) -
                   np.asarray(y, np.float64)).max()) for x, y in zip(a, b))


def box_difference(reference: Sequence,
                   candidate: Sequence,
                   score_tol: float = 1e-4) -> float:
    """Largest box difference (px) of two top-K outputs (labels (N, K),
    boxes (N, K, 4), scores (N, K)), detections matched across float ties
    of the score as :func:`rtdetr_mm.deploy.onnx_check.compare` does."""
    per_image = zip(*(np.asarray(x) for x in reference),
                    *(np.asarray(x) for x in candidate))
    return max(
        compare(item[:3], item[3:], score_tol, math.inf).box
        for item in per_image)


def peak_bytes(step, device: torch.device) -> int:
    """Most bytes held during ``step()`` above the level before it."""
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        step()
        torch.cuda.synchronize(device)
        return torch.cuda.max_memory_allocated(device) - base
    with profile(
            activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        step()
    events = sorted((e.start_ns(), e.nbytes())
                    for e in prof.profiler.kineto_results.events()
                    if e.name() == '[memory]')
    held = peak = 0
    for _, nbytes in events:
        held += nbytes
        peak = max(peak, held)
    return peak


# --- models and inputs --------------------------------------------------


def build_detector(config: str, args) -> tuple:
    """The config's detector with :func:`trained_like` weights (CPU, eval)
    and the timed batch: uint8 RGB (N, 3, H, W), (N, 2) original sizes."""
    cfg = load_config(config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    cfg.model.backbone.pop('init_cfg', None)  # random weights, no download
    cfg.model.data_preprocessor.batch_augments = None  # fixed input size
    model = MODELS.build(cfg.model).eval()
    images = list(check_images().values())
    pixels, sizes = resize_batch(images, args.shape)
    trained_like(model, lambda: torch_predict(model, pixels, sizes))
    batch = [images[i % len(images)] for i in range(args.batch)]
    return model, resize_batch(batch, args.shape)


def preprocess(preprocessor: nn.Module,
               pixels: np.ndarray,
               samples=None,
               training=False):
    """A detector's data preprocessor on RGB uint8 (N, 3, H, W): the
    normalised (N, 3, H, W) float batch (and the samples if given)."""
    inputs = [torch.from_numpy(img[::-1].copy()) for img in pixels]  # BGR
    data = preprocessor(dict(inputs=inputs, data_samples=samples), training)
    return data['inputs'], data['data_samples']


def deploy_copy(model: nn.Module, config: str) -> nn.Module:
    """A deep copy switched to deploy form; names the config if it has
    no deploy form."""
    if not hasattr(model, 'switch_to_deploy'):
        raise ValueError(f'{config}: {type(model).__name__} has no '
                         'switch_to_deploy() (no deploy form to benchmark)')
    deployed = copy.deepcopy(model)
    deployed.switch_to_deploy()
    return deployed.eval()


def onnx_session(deployed: nn.Module, shape, batch: int, folder: str):
    """ONNX Runtime session of the exported deploy form (CPU, torch's
    thread count)."""
    import onnxruntime
    path = export_onnx(
        deployed, Path(folder) / 'model.onnx', shape, batch=batch)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    return onnxruntime.InferenceSession(
        str(path), options, providers=['CPUExecutionProvider'])


def train_samples(pixels: np.ndarray,
                  num_classes: int,
                  boxes: int = 8,
                  seed: int = 0) -> List[DetDataSample]:
    """One sample per image with ``boxes`` random ground-truth boxes."""
    gen = torch.Generator().manual_seed(seed)
    height, width = pixels.shape[2:]
    size = torch.tensor([width, height], dtype=torch.float32)
    samples = []
    for _ in pixels:
        sample = DetDataSample(
            metainfo=dict(
                img_shape=(height, width),
                ori_shape=(height, width),
                scale_factor=(1., 1.)))
        xy = torch.rand(boxes, 2, generator=gen) * size * 0.6
        wh = torch.rand(boxes, 2, generator=gen) * size * 0.3 + 8
        sample.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + wh], 1),
            labels=torch.randint(0, num_classes, (boxes, ), generator=gen))
        samples.append(sample)
    return samples


# --- modes --------------------------------------------------------------


def bench_detector(config: str, args) -> dict:
    """Parameters, GFLOPs, inference modes and train step of a detector."""
    device = torch.device(args.device)
    model, (pixels, sizes) = build_detector(config, args)
    deployed = deploy_copy(model, config)
    row = {
        'params train (M)': num_params(model),
        'params deploy (M)': num_params(deployed)
    }
    forms = {
        'train-form': End2EndDetector(model).eval(),
        'deploy': End2EndDetector(deployed).eval()
    }
    one = tuple(torch.from_numpy(x[:1]) for x in (pixels, sizes))
    row[gflops_column(args.shape)] = count_gflops(forms['train-form'], one)
    modes = [m for m in INFERENCE_MODES if m in args.modes]
    if modes:
        with tempfile.TemporaryDirectory() as folder:
            session = (
                onnx_session(deployed, args.shape, args.batch, folder)
                if 'onnxruntime' in modes else None)
            for form in forms.values():
                form.to(device)
            inputs = tuple(
                torch.from_numpy(x).to(device) for x in (pixels, sizes))

            def eager(form):
                with torch.no_grad():
                    return [x.cpu() for x in forms[form](*inputs)]

            runs = {m: (lambda m=m: eager(m)) for m in modes if m in forms}
            if session is not None:
                feeds = dict(images=pixels, orig_sizes=sizes)
                runs['onnxruntime'] = lambda: session.run(None, feeds)
            row.update(latency_columns(runs, args, device))
            outputs = {m: run() for m, run in runs.items()}
            reference = (
                outputs['train-form']
                if 'train-form' in outputs else eager('train-form'))
            for mode in modes:
                if mode != 'train-form':
                    row[f'{mode} score diff'] = max_difference(
                        reference[2:], outputs[mode][2:])
                    row[f'{mode} box diff'] = box_difference(
                        reference, outputs[mode])
    if 'train-step' in args.modes:
        row['train-step (ms)'] = train_step_ms(model, pixels, args, device)
    return row


def bench_backbone(config: str, args) -> dict:
    """Parameters, GFLOPs, train form vs deploy form of ``model.backbone``
    (calibrated inside its detector on the check images)."""
    device = torch.device(args.device)
    model, (pixels, _) = build_detector(config, args)
    inputs, _ = preprocess(model.data_preprocessor, pixels)
    backbone = model.backbone
    row = {'params train (M)': num_params(backbone)}
    deployed = None
    if 'deploy' in args.modes:
        deployed = deploy_copy(backbone, config)
        row['params deploy (M)'] = num_params(deployed)
    row[gflops_column(args.shape)] = count_gflops(backbone, (inputs[:1], ))
    forms = {'train-form': backbone, 'deploy': deployed}
    modes = [m for m in INFERENCE_MODES if m in args.modes]
    if modes:
        inputs = inputs.to(device)
        runs = {}
        for mode in modes:
            form = forms[mode].to(device)
            runs[mode] = lambda form=form: [x.cpu() for x in form(inputs)]
        with torch.no_grad():
            row.update(latency_columns(runs, args, device))
            if deployed is not None:
                row['deploy output diff'] = max_difference(
                    runs['train-form'](), runs['deploy']())
    return row


def latency_columns(runs: Dict, args, device) -> dict:
    """Median ms per mode and speed-ups over the train form (round-robin)."""
    reference = 'train-form' if 'train-form' in runs else None
    timings = time_round_robin(runs, args.repeat, args.warmup, device,
                               reference)
    row = {f'{m} (ms)': s * 1e3 for m, s in timings.seconds.items()}
    row.update({f'{m} speed-up': r for m, r in timings.speedups.items()})
    return row


def train_step_ms(model: nn.Module, pixels: np.ndarray, args,
                  device: torch.device) -> float:
    """Median ms of loss forward + backward + AdamW step on ``pixels``."""
    model = copy.deepcopy(model).to(device).train()
    samples = train_samples(pixels, model.bbox_head.num_classes)
    inputs, samples = preprocess(
        model.data_preprocessor, pixels, samples, training=True)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-4)

    def step():
        loss, _ = model.parse_losses(model.loss(inputs, samples))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    timings = time_round_robin({'step': step}, args.repeat,
                               max(args.warmup, 1), device)
    return timings.seconds['step'] * 1e3


def bench_memory(config: str, args) -> dict:
    """Training-step peak memory and time of a RevCol backbone, reversible
    vs plain, on (batch, 3, H, W) normalised check images."""
    device = torch.device(args.device)
    cfg = load_config(config)
    if args.cfg_options:
        cfg.merge_from_dict(args.cfg_options)
    backbone_cfg = cfg.model.backbone
    backbone_cfg.pop('init_cfg', None)
    if MODELS.get(backbone_cfg.type) is not RevCol:
        raise ValueError(f'{config}: mode memory needs a RevCol backbone, '
                         f'this config has {backbone_cfg.type}')
    backbone_cfg.drop_path_rate = 0.  # both paths do the same work
    torch.manual_seed(0)
    backbone = MODELS.build(backbone_cfg).to(device).train()
    images = list(check_images().values())
    pixels, _ = resize_batch(
        [images[i % len(images)] for i in range(args.batch)], args.shape)
    inputs, _ = preprocess(MODELS.build(cfg.model.data_preprocessor), pixels)
    inputs = inputs.to(device)
    for param in backbone.parameters():  # allocated before, not counted
        param.grad = torch.zeros_like(param)

    def step(save_memory: bool) -> None:
        backbone.save_memory = save_memory
        backbone.zero_grad(set_to_none=False)
        sum(out.sum() for out in backbone(inputs)).backward()

    peaks = {
        name: peak_bytes(lambda s=s: step(s), device) / MIB
        for name, s in (('plain', False), ('reversible', True))
    }
    timings = time_round_robin(
        {
            'plain': lambda: step(False),
            'reversible': lambda: step(True)
        },
        args.repeat,
        args.warmup,
        device,
        reference='plain')
    return {
        'memory plain (MiB)': peaks['plain'],
        'memory reversible (MiB)': peaks['reversible'],
        'memory saved': 1 - peaks['reversible'] / peaks['plain'],
        'step plain (ms)': timings.seconds['plain'] * 1e3,
        'step reversible (ms)': timings.seconds['reversible'] * 1e3
    }


def random_detector_map(data_root: Path,
                        boxes_per_image: int = RANDOM_BOXES_PER_IMAGE,
                        seed: int = 0) -> tuple:
    """COCO bbox mAP / mAP@50 of a detector that guesses.

    Each validation image gets ``boxes_per_image`` boxes of random class and
    score, placed uniformly, with width and height drawn from the training
    set's ground-truth boxes (only where and what is guessed).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    rng = np.random.default_rng(seed)
    train = json.loads(
        (data_root / 'annotations' / 'instances_train.json').read_text())
    sizes = np.array([a['bbox'][2:] for a in train['annotations']])
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(data_root / 'annotations' / 'instances_val.json'))
    category_ids = gt.getCatIds()
    detections = []
    for image in gt.dataset['images']:
        wh = sizes[rng.integers(len(sizes), size=boxes_per_image)]
        x = rng.uniform(0, image['width'] - wh[:, 0])
        y = rng.uniform(0, image['height'] - wh[:, 1])
        labels = rng.choice(category_ids, size=boxes_per_image)
        for i in range(boxes_per_image):
            detections.append(
                dict(
                    image_id=image['id'],
                    category_id=int(labels[i]),
                    bbox=[float(x[i]),
                          float(y[i]), *map(float, wh[i])],
                    score=float(rng.uniform())))
    with contextlib.redirect_stdout(io.StringIO()):
        evaluation = COCOeval(gt, gt.loadRes(detections), 'bbox')
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    return float(evaluation.stats[0]), float(evaluation.stats[1])


def last_metrics(work_dir: Path) -> dict:
    """The last validation record mmengine wrote under ``work_dir``."""
    records = []
    for scalars in sorted(work_dir.glob('*/vis_data/scalars.json')):
        records += [
            json.loads(line) for line in scalars.read_text().splitlines()
        ]
    val = [r for r in records if 'coco/bbox_mAP' in r]
    if not val:
        raise RuntimeError(f'no validation metrics under {work_dir}')
    train_iters = max((r['iter'] for r in records if 'loss' in r), default=0)
    return dict(val[-1], iters=train_iters)


def bench_toy_map(config: str, args) -> dict:
    """Train ``config`` with tools/train.py (a fresh process) and read its
    final toy-set mAP."""
    work_dir = Path(args.work_root) / Path(config).stem
    cmd = [
        sys.executable,
        str(REPO / 'tools' / 'train.py'), config, '--work-dir',
        str(work_dir)
    ]
    options = [f'{k}={v}' for k, v in (args.cfg_options or {}).items()]
    if args.epochs:
        options += [
            f'train_cfg.max_epochs={args.epochs}',
            f'train_cfg.val_interval={args.epochs}'
        ]
    if options:
        cmd += ['--cfg-options', *options]
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    elapsed = time.perf_counter() - start
    metrics = last_metrics(work_dir)
    return {
        'toy train iters': metrics['iters'],
        'toy wall (s)': elapsed,
        'toy bbox mAP': metrics['coco/bbox_mAP'],
        'toy mAP@50': metrics['coco/bbox_mAP_50']
    }


# --- the table ----------------------------------------------------------


def gflops_column(shape) -> str:
    return f'GFLOPs@{shape[0]}x{shape[1]}'


def config_name(config: str) -> str:
    return Path(config).stem


def run(args) -> List[dict]:
    """One row (column -> number) per config of ``args``, in order."""
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = []
    if 'toy-map' in args.modes:
        from rtdetr_mm.datasets.toy_shapes import generate_toy_shapes
        mean_ap, ap50 = random_detector_map(
            generate_toy_shapes(args.data_root))
        rows.append({
            'config': f'random detector ({RANDOM_BOXES_PER_IMAGE} '
            'boxes/image)',
            'toy train iters': None,
            'toy wall (s)': None,
            'toy bbox mAP': mean_ap,
            'toy mAP@50': ap50
        })
    measured_modes = [m for m in args.modes if m not in ('memory', 'toy-map')]
    for config in args.configs:
        start = time.perf_counter()
        row = {'config': config_name(config)}
        if measured_modes:
            bench = bench_backbone if args.backbone_only else bench_detector
            row.update(bench(config, args))
        if 'memory' in args.modes:
            row.update(bench_memory(config, args))
        if 'toy-map' in args.modes:
            row.update(bench_toy_map(config, args))
        rows.append(row)
        print(
            f'{config}: measured in {time.perf_counter() - start:.0f} s',
            file=sys.stderr,
            flush=True)
    if args.relative_to:
        add_relative(rows, config_name(args.relative_to))
    return rows


def add_relative(rows: List[dict], reference: str) -> None:
    """Add ``<latency> / <reference>`` columns: each latency divided by the
    reference row's."""
    ref = next(r for r in rows if r['config'] == reference)
    latencies = [k for k in ref if k.endswith('(ms)')]
    for row in rows:
        for key in latencies:
            if key in row:
                row[f'{key[:-5]} / {reference}'] = row[key] / ref[key]


def format_value(column: str, value) -> str:
    if value is None:
        return '-'
    if isinstance(value, (str, int)):
        return str(value)
    if 'diff' in column:
        return f'{value:.1e}'
    if column == 'memory saved':
        return f'{value:.0%}'
    if 'mAP' in column:
        return f'{value:.4f}'
    if column.endswith('AP'):
        return f'{value:.1f}'
    if column.endswith(('(ms)', '(MiB)', '(s)')):
        return f'{value:.1f}'
    return f'{value:.2f}'


def markdown_table(rows: List[dict]) -> str:
    """Rows as a markdown table; columns in order of first appearance,
    '-' where a row has none."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    lines = [
        '| ' + ' | '.join(columns) + ' |',
        '|' + '|'.join(['---'] + ['---:'] * (len(columns) - 1)) + '|'
    ]
    for row in rows:
        lines.append('| ' +
                     ' | '.join(format_value(c, row.get(c))
                                for c in columns) + ' |')
    return '\n'.join(lines)


def cpu_model() -> str:
    try:
        for line in Path('/proc/cpuinfo').read_text().splitlines():
            if line.startswith('model name'):
                return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment(args) -> dict:
    """Where and how the numbers were measured."""
    import onnxruntime
    device = (
        torch.cuda.get_device_name() if args.device == 'cuda' else cpu_model())
    return dict(
        device=device,
        threads=torch.get_num_threads(),
        torch=torch.__version__,
        onnxruntime=onnxruntime.__version__,
        shape=list(args.shape),
        batch=args.batch,
        repeat=args.repeat,
        warmup=args.warmup,
        modes=args.modes,
        backbone_only=args.backbone_only,
        date=datetime.datetime.now().isoformat(timespec='seconds'))


def describe(env: dict) -> str:
    return (f"{env['device']}, {env['threads']} threads, torch "
            f"{env['torch']}, onnxruntime {env['onnxruntime']}; input "
            f"{env['batch']}x3x{env['shape'][0]}x{env['shape'][1]}; "
            f"medians of {env['repeat']} rounds after {env['warmup']} "
            f"warm-up; {env['date']}")


def main(argv=None) -> List[dict]:
    args = parse_args(argv)
    rows = run(args)
    env = environment(args)
    print(describe(env) + '\n')
    print(markdown_table(rows))
    if args.json:
        Path(args.json).write_text(
            json.dumps(dict(environment=env, rows=rows), indent=2))
    return rows


if __name__ == '__main__':
    main()
