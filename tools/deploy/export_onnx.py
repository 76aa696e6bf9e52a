"""Export a trained detector to one end-to-end ONNX graph and check it.

    python tools/deploy/export_onnx.py CONFIG CHECKPOINT [--out FILE] \
        [--shape H W] [--batch N | --dynamic-batch] [--opset 17] \
        [--input-dtype uint8|float32] [--simplify] [--no-check]

CHECKPOINT may be in train form (``tools/train.py``) or deploy form
(``tools/deploy/deploy_rtdetr.py``); the model is switched to deploy form
before export either way. The graph takes what a camera gives and returns
what ``tools/test.py`` reports:

* ``images`` (N, 3, H, W) RGB 0..255 (``--input-dtype``, uint8 by default)
  resized to ``--shape`` (default: the config's test resize), and
  ``orig_sizes`` (N, 2) int64, each image's original (height, width);
* ``labels`` (N, K), ``boxes`` (N, K, 4) xyxy in original-image pixels and
  ``scores`` (N, K): the top K = ``test_cfg.max_per_img`` over queries x
  classes (no NMS).

The mean/std of the config's data preprocessor are inside the graph; the
class names, the input size and dtype are stored in its metadata (what
``tools/deploy/onnx_infer.py`` reads). ``--check`` (on by default) runs the
file in ONNX Runtime on structured scenes and a photograph at batch 1 (and
batch 3 with ``--dynamic-batch``) and compares with the PyTorch model:
scores within ``--score-tol``, boxes within ``--box-tol`` px, same labels;
any difference beyond them is an error.
"""
import argparse
import json
import time
from pathlib import Path

from mmdet.registry import DATASETS

import rtdetr_mm
from rtdetr_mm.deploy import (check_onnx, export_onnx, load_config,
                              load_detector)
from rtdetr_mm.deploy.onnx_export import INPUT_DTYPES, write_metadata
from rtdetr_mm.utils.cli import add_unsafe_load_arg, apply_unsafe_load_arg


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='export a detector to ONNX (pre/post-processing inside) '
        'and check it against PyTorch')
    parser.add_argument('config')
    parser.add_argument('checkpoint', help='train-form or deploy-form')
    parser.add_argument(
        '--out',
        help='the .onnx file (default: beside '
        'CHECKPOINT, named after it)')
    parser.add_argument(
        '--shape',
        type=int,
        nargs=2,
        metavar=('H', 'W'),
        help='input height and width, multiples of 32 '
        "(default: the config's test Resize scale)")
    batch = parser.add_mutually_exclusive_group()
    batch.add_argument(
        '--batch', type=int, default=1, help='fixed batch size (default 1)')
    batch.add_argument(
        '--dynamic-batch',
        action='store_true',
        help='any batch size at run time')
    parser.add_argument(
        '--opset',
        type=int,
        default=17,
        help='ONNX opset (>= 16: GridSample; 17: '
        'LayerNormalization in one op)')
    parser.add_argument(
        '--input-dtype', choices=sorted(INPUT_DTYPES), default='uint8')
    parser.add_argument(
        '--simplify',
        action='store_true',
        help='simplify the graph with onnxslim (installed '
        'separately: pip install onnxslim)')
    parser.add_argument(
        '--no-check',
        dest='check',
        action='store_false',
        help='skip the ONNX Runtime vs PyTorch check')
    parser.add_argument('--score-tol', type=float, default=1e-4)
    parser.add_argument(
        '--box-tol',
        type=float,
        default=0.5,
        help='in pixels of the original image')
    add_unsafe_load_arg(parser)
    return parser.parse_args(argv)


def test_resize_shape(cfg):
    """(H, W) of the fixed-size Resize in the config's test pipeline."""
    pipeline = cfg.get('test_dataloader', {}).get('dataset',
                                                  {}).get('pipeline', [])
    for step in pipeline:
        if step.get('type') == 'Resize' and not step.get('keep_ratio', True):
            width, height = step['scale']  # mmcv scales are (w, h)
            return height, width
    return 640, 640


def class_names(cfg):
    """The class names of the config's test dataset."""
    dataset = cfg.get('test_dataloader', {}).get('dataset', {})
    classes = dataset.get('metainfo', {}).get('classes')
    if classes is None and isinstance(dataset.get('type'), str):
        dataset_cls = DATASETS.get(dataset['type'])
        classes = getattr(dataset_cls, 'METAINFO', {}).get('classes')
    return list(classes or [])


def simplify(onnx_file: Path) -> None:
    try:
        import onnxslim
    except ImportError:
        raise SystemExit('--simplify needs onnxslim: pip install onnxslim')
    import onnx
    onnx.save(onnxslim.slim(onnx.load(str(onnx_file))), str(onnx_file))


def main(argv=None):
    args = parse_args(argv)
    apply_unsafe_load_arg(args)
    cfg = load_config(args.config)
    shape = tuple(args.shape or test_resize_shape(cfg))
    model, deploy_form = load_detector(cfg, args.checkpoint)
    params = sum(p.numel() for p in model.parameters()) / 1e6
    if deploy_form:
        print(f'{args.checkpoint} is in deploy form already')
    else:
        model.switch_to_deploy()
        deployed = sum(p.numel() for p in model.parameters()) / 1e6
        print(f'switch_to_deploy(): {params:.2f} M -> {deployed:.2f} M '
              'parameters')
    out = Path(args.out or Path(args.checkpoint).with_suffix('.onnx'))
    start = time.perf_counter()
    export_onnx(
        model,
        out,
        shape,
        batch=args.batch,
        dynamic_batch=args.dynamic_batch,
        opset=args.opset,
        input_dtype=args.input_dtype)
    if args.simplify:
        simplify(out)
    write_metadata(
        out,
        dict(
            classes=json.dumps(class_names(cfg)),
            input_shape=json.dumps(list(shape)),
            input_dtype=args.input_dtype,
            batch='dynamic' if args.dynamic_batch else str(args.batch),
            config=Path(args.config).name,
            checkpoint=Path(args.checkpoint).name,
            rtdetr_mm_version=rtdetr_mm.__version__))
    size_mb = out.stat().st_size / 2**20
    print(f'exported {out} ({size_mb:.1f} MB, opset {args.opset}, input '
          f'{args.input_dtype} {shape[0]}x{shape[1]}, batch '
          f'{"dynamic" if args.dynamic_batch else args.batch}) in '
          f'{time.perf_counter() - start:.1f} s')
    if args.check:
        batches = [1, 3] if args.dynamic_batch else [args.batch]
        for run in check_onnx(out, model, shape, batches, args.input_dtype,
                              args.score_tol, args.box_tol):
            print(f'check batch {run["batch"]} ({", ".join(run["images"])})'
                  f': max score difference {run["score"]:.2e} (tol '
                  f'{args.score_tol}), max box difference {run["box"]:.3f} '
                  f'px (tol {args.box_tol})')
        print('check passed: ONNX Runtime matches PyTorch')
    print(f'run it without PyTorch: python tools/deploy/onnx_infer.py {out} '
          'IMAGE... --out-dir DIR')
    return out


if __name__ == '__main__':
    main()
