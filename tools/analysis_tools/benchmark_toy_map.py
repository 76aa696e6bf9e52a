"""Toy-set accuracy benchmark: train each config for a fixed schedule, report
mAP.

    python tools/analysis_tools/benchmark_toy_map.py \
        configs/toy/A.py [B.py ...]
        [--epochs N] [--work-root work_dirs/toy_map]

Runs ``tools/train.py`` (a subprocess per config, so each gets a fresh
process) and prints a table of iterations, wall time and the final COCO
bbox mAP / mAP@50 on the toy validation set, under a first row that scores
a random detector on the same set (the floor a trained model must clear).
"""
import argparse
import contextlib
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
RANDOM_BOXES_PER_IMAGE = 100


def random_detector_map(data_root: Path,
                        boxes_per_image: int = RANDOM_BOXES_PER_IMAGE,
                        seed: int = 0) -> tuple:
    """COCO bbox mAP / mAP@50 of a detector that guesses.

    Each validation image gets ``boxes_per_image`` boxes of random class and
    score, placed uniformly, with width and height drawn from the *training*
    set's ground-truth boxes (so the sizes are right and only where and what
    is guessed).
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
            detections.append(dict(
                image_id=image['id'], category_id=int(labels[i]),
                bbox=[float(x[i]), float(y[i]), *map(float, wh[i])],
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
    parser.add_argument('--data-root', default='data/toy_shapes',
                        help="the configs' toy set (generated there if "
                        'absent), scored by the random-detector row')
    args = parser.parse_args()

    from rtdetr_mm.datasets.toy_shapes import generate_toy_shapes
    data_root = generate_toy_shapes(args.data_root)
    random_row = f'random detector ({RANDOM_BOXES_PER_IMAGE} boxes/image)'
    rows = [(random_row, '-', '-', *random_detector_map(data_root))]
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
        rows.append((Path(config).stem, str(metrics['iters']),
                     f'{elapsed:.0f}', metrics['coco/bbox_mAP'],
                     metrics['coco/bbox_mAP_50']))

    header = ('config', 'train iters', 'wall (s)', 'bbox mAP', 'mAP@50')
    widths = [max(len(header[0]), *(len(r[0]) for r in rows)), 11, 9, 9, 7]
    print(' | '.join(h.ljust(w) for h, w in zip(header, widths)))
    print('-+-'.join('-' * w for w in widths))
    for name, iters, wall, m, m50 in rows:
        print(f'{name.ljust(widths[0])} | {iters:>11} | {wall:>9} | '
              f'{m:>9.4f} | {m50:>7.4f}')


if __name__ == '__main__':
    main()
