"""ToyShapes: a small synthetic detection dataset in COCO format.

The embedded default of rtdetr_mm: a detector trains on it on a CPU in
minutes, so every pipeline (train, test, resume, DDP, mim) can be exercised
without downloading COCO. Images show filled shapes of five classes with
varied sizes, colours, aspect ratios and overlaps on textured backgrounds.

Generation is deterministic (a fixed seed gives byte-identical PNGs and JSON)
and happens on first use: :class:`ToyShapesDataset` creates the files under
its ``data_root`` when they are missing. Several processes (DDP ranks) may
race to create them; each writes to a private temporary folder and the first
atomic rename wins.

Layout::

    data_root/
      annotations/instances_train.json, instances_val.json
      train/000000.png ...
      val/000000.png ...

Command line: ``python -m rtdetr_mm.datasets.toy_shapes data/toy_shapes``.
"""
import argparse
import json
import math
import os
import shutil
import tempfile
from pathlib import Path
from typing import Dict, List, Tuple

import cv2
import numpy as np
from mmdet.datasets import CocoDataset
from mmdet.registry import DATASETS

CLASSES = ('circle', 'rectangle', 'triangle', 'star', 'cross')
# Version of the generator; bump when the output changes so that stale data
# on disk is detected and regenerated.
GENERATOR_VERSION = 1
DEFAULT_SPLITS = dict(train=(400, 0), val=(100, 1))  # split: (images, seed)
MIN_SIZE, MAX_SIZE = 16, 110  # shape extent in pixels at 256 px images
MAX_OVERLAP_IOU = 0.3


def _background(rng: np.random.Generator, height: int,
                width: int) -> np.ndarray:
    """A textured background: a colour gradient, stripes and noise."""
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    angle = rng.uniform(0, math.pi)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = (xx * math.cos(angle) + yy * math.sin(angle))
    t = (t - t.min()) / max(float(np.ptp(t)), 1.0)
    img = c0 * (1 - t[..., None]) + c1 * t[..., None]
    period = rng.uniform(6, 40)
    stripes = np.sin(
        (xx * math.sin(angle) - yy * math.cos(angle)) / period * 2 * math.pi)
    img += rng.uniform(0, 30) * stripes[..., None]
    img += rng.normal(0, rng.uniform(2, 12), img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def _star(cx, cy, r):
    pts = []
    for i in range(10):
        rad = r if i % 2 == 0 else r * 0.45
        a = -math.pi / 2 + i * math.pi / 5
        pts.append((cx + rad * math.cos(a), cy + rad * math.sin(a)))
    return np.array(pts)


def _cross(cx, cy, w, h):
    a, b = w / 2, h / 2
    ta, tb = a / 3, b / 3
    return np.array([(-ta, -b), (ta, -b), (ta, -tb), (a, -tb),
                     (a, tb), (ta, tb), (ta, b), (-ta, b), (-ta, tb), (-a, tb),
                     (-a, -tb), (-ta, -tb)]) + (cx, cy)


def _rotate(points: np.ndarray, cx: float, cy: float, angle: float):
    c, s = math.cos(angle), math.sin(angle)
    d = points - (cx, cy)
    return np.stack([d[:, 0] * c - d[:, 1] * s, d[:, 0] * s + d[:, 1] * c],
                    1) + (cx, cy)


def _draw_shape(img: np.ndarray, rng: np.random.Generator, label: int,
                cx: float, cy: float, size: float) -> np.ndarray:
    """Draw one shape; return the mask of the pixels it covers."""
    mask = np.zeros(img.shape[:2], np.uint8)
    aspect = rng.uniform(0.6, 1.6)
    w, h = size * aspect, size / aspect
    angle = rng.uniform(-0.5, 0.5)
    name = CLASSES[label]
    if name == 'circle':
        cv2.circle(mask, (round(cx), round(cy)), max(2, round(size / 2)), 255,
                   -1, cv2.LINE_AA)
    else:
        if name == 'rectangle':
            pts = np.array([(-w / 2, -h / 2), (w / 2, -h / 2), (w / 2, h / 2),
                            (-w / 2, h / 2)]) + (cx, cy)
        elif name == 'triangle':
            pts = np.array([(0, -h / 2), (w / 2, h / 2),
                            (-w / 2, h / 2)]) + (cx, cy)
        elif name == 'star':
            pts = _star(cx, cy, size / 2)
        else:
            pts = _cross(cx, cy, w, h)
        pts = _rotate(pts, cx, cy, angle)
        cv2.fillPoly(mask, [np.round(pts).astype(np.int32)], 255, cv2.LINE_AA)
    colour = rng.uniform(0, 255, 3)
    shade = rng.uniform(0.7, 1.0)
    alpha = (mask.astype(np.float32) / 255)[..., None]
    img[:] = (img * (1 - alpha) + colour * shade * alpha).astype(np.uint8)
    return mask > 127


def _iou(a, b):
    ix = max(0., min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0., min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = ((a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) -
             inter)
    return inter / union if union > 0 else 0.


def make_image(
        rng: np.random.Generator,
        height: int = 256,
        width: int = 256) -> Tuple[np.ndarray, List[Tuple[int, List[float]]]]:
    """One image and its objects as ``(label, [x1, y1, x2, y2])``."""
    img = _background(rng, height, width)
    objects, boxes = [], []
    for _ in range(int(rng.integers(1, 7))):
        for _attempt in range(10):
            size = float(rng.uniform(MIN_SIZE, MAX_SIZE))
            cx = float(rng.uniform(size / 2, width - size / 2))
            cy = float(rng.uniform(size / 2, height - size / 2))
            rough = (cx - size, cy - size, cx + size, cy + size)
            if all(_iou(rough, b) <= MAX_OVERLAP_IOU for b in boxes):
                break
        else:
            continue
        label = int(rng.integers(len(CLASSES)))
        covered = _draw_shape(img, rng, label, cx, cy, size)
        ys, xs = np.nonzero(covered)
        if len(xs) < 20:
            continue
        box = [
            float(xs.min()),
            float(ys.min()),
            float(xs.max() + 1),
            float(ys.max() + 1)
        ]
        boxes.append(rough)
        objects.append((label, box))
    return img, objects


def generate_split(out_dir: Path,
                   split: str,
                   num_images: int,
                   seed: int,
                   size: int = 256) -> dict:
    """Write ``num_images`` PNGs under ``out_dir/split``; return COCO dict."""
    rng = np.random.default_rng(seed)
    (out_dir / split).mkdir(parents=True, exist_ok=True)
    images, annotations = [], []
    for image_id in range(num_images):
        img, objects = make_image(rng, size, size)
        file_name = f'{image_id:06d}.png'
        cv2.imwrite(str(out_dir / split / file_name), img)
        images.append(
            dict(id=image_id, file_name=file_name, height=size, width=size))
        for label, (x1, y1, x2, y2) in objects:
            annotations.append(
                dict(
                    id=len(annotations) + 1,
                    image_id=image_id,
                    category_id=label + 1,
                    bbox=[x1, y1, x2 - x1, y2 - y1],
                    area=(x2 - x1) * (y2 - y1),
                    iscrowd=0))
    return dict(
        info=dict(
            description='rtdetr_mm ToyShapes', version=GENERATOR_VERSION),
        images=images,
        annotations=annotations,
        categories=[dict(id=i + 1, name=n) for i, n in enumerate(CLASSES)])


def generate_toy_shapes(root,
                        splits: Dict[str, Tuple[int, int]] = None,
                        size: int = 256) -> Path:
    """Create the dataset at ``root`` unless a complete copy is there.

    Args:
        root: the dataset folder (``data/toy_shapes``).
        splits: ``{split: (num_images, seed)}``; default 400 train / 100 val.
        size: image height and width in pixels.

    Returns:
        ``root`` as a Path.
    """
    root = Path(root)
    splits = splits or DEFAULT_SPLITS
    stamp = root / 'VERSION'
    if stamp.exists() and stamp.read_text().strip() == str(GENERATOR_VERSION):
        return root
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(
            f'{root} exists but is not a ToyShapes v{GENERATOR_VERSION} '
            'dataset (no matching VERSION file); delete it to regenerate')
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f'.{root.name}-', dir=root.parent))
    try:
        (tmp / 'annotations').mkdir()
        for split, (num_images, seed) in splits.items():
            coco = generate_split(tmp, split, num_images, seed, size)
            with open(tmp / 'annotations' / f'instances_{split}.json',
                      'w') as f:
                json.dump(coco, f)
        (tmp / 'VERSION').write_text(f'{GENERATOR_VERSION}\n')
        if root.exists():  # an empty folder left by the user
            root.rmdir()
        os.rename(tmp, root)
    except OSError:
        # Another process finished first: its copy is identical.
        if not stamp.exists():
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return root


@DATASETS.register_module()
class ToyShapesDataset(CocoDataset):
    """COCO-format ToyShapes dataset, generated under ``data_root`` on use.

    Accepts every :class:`mmdet.datasets.CocoDataset` argument.

    Example:
        >>> from mmdet.registry import DATASETS
        >>> ds = DATASETS.build(dict(
        ...     type='ToyShapesDataset', data_root='data/toy_shapes/',
        ...     ann_file='annotations/instances_val.json',
        ...     data_prefix=dict(img='val/'), pipeline=[]))
        >>> ds.metainfo['classes']
        ('circle', 'rectangle', 'triangle', 'star', 'cross')
    """
    METAINFO = dict(
        classes=CLASSES,
        palette=[(220, 20, 60), (0, 130, 255), (0, 170, 30), (250, 170, 30),
                 (160, 30, 200)])

    def __init__(self, *args, data_root: str = '', **kwargs):
        if not data_root:
            raise ValueError('ToyShapesDataset needs data_root (the folder '
                             'the dataset is generated in, e.g. '
                             'data/toy_shapes/)')
        generate_toy_shapes(data_root)
        super().__init__(*args, data_root=data_root, **kwargs)


def main():
    parser = argparse.ArgumentParser(description='Generate ToyShapes.')
    parser.add_argument('root', help='output folder, e.g. data/toy_shapes')
    args = parser.parse_args()
    print(f'ToyShapes written to {generate_toy_shapes(args.root)}')


if __name__ == '__main__':
    main()
