"""Toy-set accuracy benchmark: train each config for a fixed schedule, report mAP.

    python tools/analysis_tools/benchmark_toy_map.py configs/toy/A.py [B.py ...]
        [--epochs N] [--work-root work_dirs/toy_map]

Runs ``tools/train.py`` (a subprocess per config, so each gets a fresh
process) and prints a table of iterations, wall time and the final COCO
bbox mAP / mAP@50 on the toy validation set.
"""
import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def last_metrics(work_dir: Path) -> dict:
    """The last validation record mmengine wrote under ``work_dir``."""
    records = []
    for scalars in sorted(work_dir.glob('*/vis_data/scalars.json')):
        records += [json.loads(line)
                    for line in scalars.read_text().splitlines()]
    val = [r for r in records if 'coco/bbox_mAP' in r]
    if not val:
        raise RuntimeError(f'no validation metrics under {work_dir}')
    train_iters = max((r['iter'] for r in records if 'loss' in r), default=0)
    return dict(val[-1], iters=train_iters)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('configs', nargs='+')
    parser.add_argument('--epochs', type=int,
                        help='override train_cfg.max_epochs (validation runs '
                        'after the last epoch)')
    parser.add_argument('--work-root', default='work_dirs/toy_map')
    args = parser.parse_args()

    rows = []
    for config in args.configs:
        work_dir = Path(args.work_root) / Path(config).stem
        cmd = [sys.executable, str(REPO / 'tools' / 'train.py'), config,
               '--work-dir', str(work_dir)]
        if args.epochs:
            cmd += ['--cfg-options', f'train_cfg.max_epochs={args.epochs}',
                    f'train_cfg.val_interval={args.epochs}']
        start = time.time()
        subprocess.run(cmd, check=True)
        elapsed = time.time() - start
        metrics = last_metrics(work_dir)
        rows.append((Path(config).stem, metrics['iters'], elapsed,
                     metrics['coco/bbox_mAP'], metrics['coco/bbox_mAP_50']))

    header = ('config', 'train iters', 'wall (s)', 'bbox mAP', 'mAP@50')
    widths = [max(len(header[0]), *(len(r[0]) for r in rows)), 11, 9, 9, 7]
    print(' | '.join(h.ljust(w) for h, w in zip(header, widths)))
    print('-+-'.join('-' * w for w in widths))
    for name, iters, wall, m, m50 in rows:
        print(f'{name.ljust(widths[0])} | {iters:>11d} | {wall:>9.0f} | '
              f'{m:>9.3f} | {m50:>7.3f}')


if __name__ == '__main__':
    main()
