"""Write docs/model_zoo.md: every COCO config benchmarked in one run.

    python tools/analysis_tools/model_zoo.py \
        [--configs 'configs/rtdetr_*_coco.py'] [--shape 640 640] \
        [--repeat 5] [--threads N] [--out docs/model_zoo.md]

One row per config, from ``benchmark.py``'s functions at batch 1 on the
CPU: parameters (train / deploy form), GFLOPs, latency of the eager train
form, the eager deploy form and ONNX Runtime, each also relative to
RT-DETR-R18vd measured in the same run (added to the run if the glob misses
it), the official RT-DETR paper's AP and published parameters / GFLOPs
where there are some, and the ImageNet checkpoint the config starts from.
The file's header names the machine, versions, date and command.
"""
import argparse
import glob
import importlib.util
import shlex
import sys
from pathlib import Path

from rtdetr_mm.deploy import load_config

REFERENCE = 'configs/rtdetr_r18vd_coco.py'
# RT-DETR paper (Lv et al., 2023), COCO val2017 at 640: AP, params (M),
# GFLOPs
PUBLISHED = {
    'rtdetr_r18vd_coco': (46.5, 20, 60),
    'rtdetr_r34vd_coco': (48.9, 31, 92),
    'rtdetr_r50vd_m_coco': (51.3, 36, 100),
    'rtdetr_r50vd_coco': (53.1, 42, 136),
    'rtdetr_r101vd_coco': (54.3, 76, 259),
}


def load_benchmark():
    """benchmark.py of this folder, imported by path (tools/ is no
    package)."""
    path = Path(__file__).with_name('benchmark.py')
    spec = importlib.util.spec_from_file_location('benchmark', path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument(
        '--configs',
        default='configs/rtdetr_*_coco.py',
        help='glob of the configs to benchmark')
    parser.add_argument(
        '--shape', type=int, nargs=2, default=[640, 640], metavar=('H', 'W'))
    parser.add_argument('--repeat', type=int, default=5)
    parser.add_argument('--warmup', type=int, default=1)
    parser.add_argument(
        '--threads', type=int, help='torch and ONNX Runtime CPU threads')
    parser.add_argument('--out', default='docs/model_zoo.md')
    args = parser.parse_args(argv)
    args.config_files = sorted(glob.glob(args.configs))
    if not args.config_files:
        parser.error(f'--configs {args.configs!r} matches no file')
    if REFERENCE not in args.config_files:
        args.config_files.insert(0, REFERENCE)
    return args


def checkpoint_url(config: str) -> str:
    """``model.backbone.init_cfg.checkpoint`` of the config ('-' if
    none)."""
    init_cfg = load_config(config).model.backbone.get('init_cfg') or {}
    return init_cfg.get('checkpoint', '-')


def zoo_rows(rows, configs):
    """Benchmark rows with the published figures and checkpoint added."""
    out = []
    for row, config in zip(rows, configs):
        ap, params, gflops = PUBLISHED.get(row['config'], (None, ) * 3)
        out.append(
            dict(
                row, **{
                    'paper AP': ap,
                    'paper params (M) / GFLOPs':
                    None if ap is None else f'{params} / {gflops}',
                    'ImageNet checkpoint': checkpoint_url(config)
                }))
    return out


def main(argv=None) -> Path:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    bench = load_benchmark()
    bench_argv = [
        *args.config_files, '--shape', *map(str, args.shape), '--batch', '1',
        '--device', 'cpu', '--modes', 'train-form', 'deploy', 'onnxruntime',
        '--repeat',
        str(args.repeat), '--warmup',
        str(args.warmup), '--relative-to', REFERENCE
    ]
    if args.threads:
        bench_argv += ['--threads', str(args.threads)]
    bench_args = bench.parse_args(bench_argv)
    rows = zoo_rows(bench.run(bench_args), args.config_files)
    env = bench.environment(bench_args)
    command = shlex.join(
        ['python', 'tools/analysis_tools/model_zoo.py', *argv])
    text = '\n'.join([
        '# Model zoo: size and CPU latency of every COCO config', '',
        f"* machine: {env['device']}, {env['threads']} threads "
        '(torch and ONNX Runtime)',
        f"* torch {env['torch']}, onnxruntime {env['onnxruntime']}",
        f"* date: {env['date']}", f'* command: `{command}`', '',
        f"Input 1x3x{args.shape[0]}x{args.shape[1]}, random weights made "
        'realistic (`rtdetr_mm.testing.trained_like`); latencies are '
        f'medians of {args.repeat} rounds in which the three forms take '
        'turns (pixels in, top-K boxes out). GFLOPs: 2 x the multiply-adds '
        'counted, like the paper (see `tools/analysis_tools/benchmark.py` '
        'for which ops count). '
        '`/ rtdetr_r18vd_coco` columns divide by RT-DETR-R18vd measured in '
        'the same run. Paper AP and published params/GFLOPs: the official '
        'RT-DETR (COCO val2017, 640x640); the AP of the other backbones is '
        'not measured here.', '',
        bench.markdown_table(rows), ''
    ])
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    print(f'wrote {out}')
    return out


if __name__ == '__main__':
    main()
