"""Check an exported graph against the PyTorch model's ``predict``.

Both sides get the same resized uint8 pixels; the PyTorch side goes through
the config's data preprocessor and ``predict(rescale=True)``, exactly what
``tools/test.py`` runs. Detections are compared rank by rank; two detections
whose scores differ by less than the tolerance may come in either order
(ONNX Runtime and PyTorch round differently), so a rank that disagrees is
matched against the other side's detections of (nearly) equal score.
"""
from dataclasses import dataclass, field
from typing import Dict, List, Sequence, Tuple

import cv2
import numpy as np
import torch
from mmdet.structures import DetDataSample

from rtdetr_mm.datasets.toy_shapes import make_image


class OnnxMismatchError(RuntimeError):
    """ONNX Runtime and PyTorch disagree beyond the tolerances."""


Detections = Tuple[np.ndarray, np.ndarray, np.ndarray]  # labels, boxes, sc.


def check_images(seed: int = 0) -> Dict[str, np.ndarray]:
    """RGB uint8 images by name: three structured scenes of different sizes
    and one photograph (matplotlib's sample portrait, a real camera
    image)."""
    from matplotlib import cbook
    rng = np.random.default_rng(seed)
    images = {
        f'scene {h}x{w}': make_image(rng, h, w)[0][..., ::-1]  # BGR -> RGB
        for h, w in ((256, 256), (300, 420), (480, 360))
    }
    with cbook.get_sample_data('grace_hopper.jpg') as f:
        images['photo grace_hopper.jpg'] = cv2.imdecode(
            np.frombuffer(f.read(), np.uint8), cv2.IMREAD_COLOR)[..., ::-1]
    return {name: np.ascontiguousarray(img) for name, img in images.items()}


def resize_batch(images: Sequence[np.ndarray],
                 shape: Sequence[int]) -> Tuple[np.ndarray, np.ndarray]:
    """(N, 3, H, W) uint8 resized like mmcv's ``Resize`` (bilinear, no
    aspect ratio kept) and the (N, 2) int64 original (height, width)."""
    height, width = shape
    batch = np.stack([
        cv2.resize(img, (width, height), interpolation=cv2.INTER_LINEAR)
        for img in images
    ]).transpose(0, 3, 1, 2)
    orig_sizes = np.array([img.shape[:2] for img in images], np.int64)
    return np.ascontiguousarray(batch), orig_sizes


@torch.no_grad()
def torch_predict(detector, batch: np.ndarray,
                  orig_sizes: np.ndarray) -> List[Detections]:
    """``detector.predict`` on RGB uint8 ``batch`` (N, 3, H, W) as
    ``tools/test.py`` runs it: BGR into the data preprocessor, rescale."""
    height, width = batch.shape[2:]
    samples = [
        DetDataSample(
            metainfo=dict(
                img_shape=(height, width),
                ori_shape=tuple(map(int, size)),
                scale_factor=(width / size[1], height / size[0])))
        for size in orig_sizes
    ]
    inputs = [torch.from_numpy(img[::-1].copy()) for img in batch]  # BGR
    data = detector.data_preprocessor(
        dict(inputs=inputs, data_samples=samples), False)
    results = detector.predict(
        data['inputs'], data['data_samples'], rescale=True)
    return [(r.pred_instances.labels.numpy(), r.pred_instances.bboxes.numpy(),
             r.pred_instances.scores.numpy()) for r in results]


@dataclass
class Comparison:
    """Largest differences between two sets of detections."""
    score: float = 0.0
    box: float = 0.0
    mismatches: List[str] = field(default_factory=list)


def compare(reference: Detections, candidate: Detections, score_tol: float,
            box_tol: float) -> Comparison:
    """Compare one image's sorted detections (see the module docstring).

    A candidate detection matches the reference one of the same label, a
    score within ``score_tol`` (its own rank or a float tie) and the
    closest box, if within ``box_tol`` px.
    Detections at the K-th score (within the tolerance) may be cut off on
    one side only.
    """
    ref_labels, ref_boxes, ref_scores = reference
    labels, boxes, scores = candidate
    result = Comparison(score=float(np.abs(ref_scores - scores).max()))
    used = np.zeros(len(ref_labels), bool)
    cutoff = min(ref_scores[-1], scores[-1]) + score_tol
    for rank in range(len(labels)):
        near = np.abs(ref_scores - scores[rank]) <= score_tol
        near[rank] = True
        box_diff = np.abs(ref_boxes - boxes[rank]).max(1)
        fits = near & ~used & (ref_labels == labels[rank]) & (
            box_diff <= box_tol)
        if fits.any():  # the closest box (a tie may swap same-label boxes)
            candidates = np.flatnonzero(fits)
            match = int(candidates[np.argmin(box_diff[candidates])])
        else:
            if scores[rank] > cutoff:
                result.mismatches.append(
                    f'rank {rank}: label {labels[rank]} score '
                    f'{scores[rank]:.5f} box {np.round(boxes[rank], 1)} has '
                    f'no PyTorch counterpart (there: label '
                    f'{ref_labels[rank]} score {ref_scores[rank]:.5f} box '
                    f'{np.round(ref_boxes[rank], 1)})')
            continue
        used[match] = True
        result.box = max(result.box, float(box_diff[match]))
    return result


def check_onnx(onnx_file,
               detector,
               shape: Sequence[int],
               batch_sizes: Sequence[int] = (1, ),
               input_dtype: str = 'uint8',
               score_tol: float = 1e-4,
               box_tol: float = 0.5) -> List[dict]:
    """Run ``onnx_file`` in ONNX Runtime and ``detector`` in PyTorch on
    :func:`check_images`, per batch size, and compare.

    Batch 1 runs every image alone; a larger batch takes consecutive images
    (different content per image, different original sizes).

    Returns:
        list[dict]: per run: ``batch``, ``images``, ``score`` and ``box``
        (largest differences).

    Raises:
        OnnxMismatchError: naming the image and rank that disagree most.
    """
    import onnxruntime
    session = onnxruntime.InferenceSession(
        str(onnx_file), providers=['CPUExecutionProvider'])
    named = check_images()
    names, images = list(named), list(named.values())
    runs, problems = [], []
    for batch in batch_sizes:
        groups = ([[i] for i in range(len(images))]
                  if batch == 1 else [[i % len(images) for i in range(batch)]])
        for group in groups:
            pixels, orig_sizes = resize_batch([images[i] for i in group],
                                              shape)
            onnx_out = session.run(
                None,
                dict(images=pixels.astype(input_dtype), orig_sizes=orig_sizes))
            reference = torch_predict(detector, pixels, orig_sizes)
            run = dict(
                batch=batch,
                images=[names[i] for i in group],
                score=0.0,
                box=0.0)
            for j, index in enumerate(group):
                got = tuple(out[j] for out in onnx_out)
                result = compare(reference[j], got, score_tol, box_tol)
                run['score'] = max(run['score'], result.score)
                run['box'] = max(run['box'], result.box)
                where = f'batch {batch}, {names[index]}'
                if result.score > score_tol:
                    problems.append(f'{where}: scores differ by up to '
                                    f'{result.score:.3g} > {score_tol}')
                problems += [f'{where}: {m}' for m in result.mismatches]
            runs.append(run)
    if problems:
        worst = max(run['score'] for run in runs)
        raise OnnxMismatchError(
            f'{onnx_file}: ONNX Runtime and PyTorch disagree (largest score '
            f'difference {worst:.3g}, tolerance {score_tol}; boxes '
            f'{box_tol} px):\n  ' + '\n  '.join(problems[:10]))
    return runs
