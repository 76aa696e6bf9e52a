"""Run an exported detector with ONNX Runtime only: what goes on a robot.

    python tools/deploy/onnx_infer.py MODEL.onnx IMAGE [IMAGE ...] \
        [--out-dir DIR] [--score-thr 0.3] [--threads N]

Needs onnxruntime, numpy and an image library (opencv-python-headless, or
Pillow); no torch, mmcv or rtdetr_mm. The input size, input dtype, batch
and class names come from the model's metadata (written by
``tools/deploy/export_onnx.py``). Prints each image's detections with a
score >= ``--score-thr``; with ``--out-dir`` also draws them into
``DIR/<image name>`` and writes ``DIR/results.json``.

With OpenCV the images are resized as ``tools/test.py`` resizes them
(bilinear, ``cv2.resize``), so the boxes are those of ``tools/test.py
--show-dir``; Pillow's bilinear resize antialiases and may move boxes by a
few pixels.
"""
import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime

try:
    import cv2
except ImportError:  # Pillow instead
    cv2 = None


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description='detect objects with an exported ONNX model')
    parser.add_argument('model', help='the .onnx file')
    parser.add_argument('images', nargs='+', help='image files')
    parser.add_argument(
        '--out-dir', help='draw the detections and write '
        'results.json here')
    parser.add_argument('--score-thr', type=float, default=0.3)
    parser.add_argument(
        '--threads',
        type=int,
        default=0,
        help='ONNX Runtime intra-op threads (0: all cores)')
    return parser.parse_args(argv)


def read_rgb(path: str) -> np.ndarray:
    """(H, W, 3) uint8 RGB; names the file when it is not an image."""
    if cv2 is not None:
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            raise SystemExit(f'{path}: not an image file (or not readable)')
        return image[..., ::-1]
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert('RGB'))
    except (OSError, UnidentifiedImageError) as error:
        raise SystemExit(f'{path}: not an image file ({error})')


def resize(image: np.ndarray, height: int, width: int) -> np.ndarray:
    if cv2 is not None:
        return cv2.resize(
            image, (width, height), interpolation=cv2.INTER_LINEAR)
    from PIL import Image
    return np.asarray(
        Image.fromarray(image).resize((width, height), Image.BILINEAR))


class Detector:
    """An exported model and what its metadata says about its input."""

    def __init__(self, model: str, threads: int = 0) -> None:
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        self.session = onnxruntime.InferenceSession(
            model, options, providers=['CPUExecutionProvider'])
        meta = self.session.get_modelmeta().custom_metadata_map
        if 'input_shape' not in meta:
            raise SystemExit(f'{model}: no rtdetr_mm metadata (input_shape, '
                             'classes); export it with '
                             'tools/deploy/export_onnx.py')
        self.height, self.width = json.loads(meta['input_shape'])
        self.dtype = np.dtype(meta.get('input_dtype', 'uint8'))
        self.classes = json.loads(meta.get('classes', '[]'))
        batch = meta.get('batch', '1')
        self.batch = None if batch == 'dynamic' else int(batch)

    def class_name(self, label: int) -> str:
        return (self.classes[label]
                if label < len(self.classes) else str(label))

    def __call__(self, images):
        """Detections (labels, boxes, scores) of each RGB image."""
        results = []
        step = self.batch or len(images)
        for start in range(0, len(images), step):
            chunk = list(images[start:start + step])
            real = len(chunk)
            chunk += chunk[-1:] * (step - real)  # a fixed batch is filled
            pixels = np.stack([
                resize(img, self.height, self.width) for img in chunk
            ]).transpose(0, 3, 1, 2)
            orig_sizes = np.array([img.shape[:2] for img in chunk], np.int64)
            labels, boxes, scores = self.session.run(
                None,
                dict(images=pixels.astype(self.dtype), orig_sizes=orig_sizes))
            results += list(zip(labels, boxes, scores))[:real]
        return results


def draw(image: np.ndarray, detections, detector: Detector) -> np.ndarray:
    """The image (RGB) with a box and 'class score' per detection."""
    rng = np.random.default_rng(0)
    palette = rng.integers(64, 256, (max(len(detector.classes), 1) + 80, 3))
    if cv2 is not None:
        canvas = np.ascontiguousarray(image)
        for det in detections:
            colour = tuple(int(c) for c in palette[det['label']])
            x1, y1, x2, y2 = (int(round(v)) for v in det['box'])
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
            cv2.putText(canvas, f"{det['class']} {det['score']:.2f}",
                        (x1, max(y1 - 4, 10)), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                        colour, 1, cv2.LINE_AA)
        return canvas
    from PIL import Image, ImageDraw
    canvas = Image.fromarray(image)
    pen = ImageDraw.Draw(canvas)
    for det in detections:
        colour = tuple(int(c) for c in palette[det['label']])
        pen.rectangle(det['box'], outline=colour, width=2)
        pen.text((det['box'][0], max(det['box'][1] - 12, 0)),
                 f"{det['class']} {det['score']:.2f}",
                 fill=colour)
    return np.asarray(canvas)


def write_image(path: Path, image: np.ndarray) -> None:
    if cv2 is not None:
        cv2.imwrite(str(path), image[..., ::-1])
    else:
        from PIL import Image
        Image.fromarray(image).save(path)


def main(argv=None):
    args = parse_args(argv)
    detector = Detector(args.model, args.threads)
    images = [read_rgb(path) for path in args.images]
    out_dir = Path(args.out_dir) if args.out_dir else None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    report = []
    for path, image, (labels, boxes, scores) in zip(args.images, images,
                                                    detector(images)):
        keep = scores >= args.score_thr
        detections = [{
            'label': int(label),
            'class': detector.class_name(int(label)),
            'score': round(float(score), 5),
            'box': [round(float(v), 2) for v in box]
        } for label, box, score in zip(labels[keep], boxes[keep], scores[keep])
                      ]
        print(f'{path}: {len(detections)} detection(s) with score >= '
              f'{args.score_thr}')
        for det in detections:
            print(f"  {det['class']:>12s} {det['score']:.3f}  "
                  f"box {' '.join(f'{v:.1f}' for v in det['box'])}")
        report.append(dict(image=path, detections=detections))
        if out_dir is not None:
            write_image(out_dir / Path(path).name,
                        draw(image, detections, detector))
    if out_dir is not None:
        (out_dir / 'results.json').write_text(json.dumps(report, indent=1))
        print(f'drawn into {out_dir}/, detections in '
              f'{out_dir / "results.json"}')
    return report


if __name__ == '__main__':
    main()
