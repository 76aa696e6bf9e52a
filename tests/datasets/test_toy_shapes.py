"""ToyShapes: determinism, COCO validity, the registered dataset."""
import hashlib
import json
import multiprocessing as mp

import numpy as np
import pytest
from pycocotools.coco import COCO

from rtdetr_mm.datasets.toy_shapes import (CLASSES, ToyShapesDataset,
                                           generate_toy_shapes)

SMALL = dict(train=(12, 0), val=(4, 1))


def _digest(root):
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob('*') if p.is_file()):
        h.update(path.relative_to(root).as_posix().encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def test_generation_is_deterministic(tmp_path):
    a = generate_toy_shapes(tmp_path / 'a', SMALL)
    b = generate_toy_shapes(tmp_path / 'b', SMALL)
    assert _digest(a) == _digest(b)
    c = generate_toy_shapes(tmp_path / 'c', dict(train=(12, 7), val=(4, 1)))
    assert _digest(a) != _digest(c)  # the seed matters


def test_annotations_are_valid_coco_inside_images(tmp_path):
    root = generate_toy_shapes(tmp_path / 'toy', SMALL)
    coco = COCO(str(root / 'annotations' / 'instances_train.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == \
        list(CLASSES)
    assert len(coco.getImgIds()) == 12
    anns = coco.loadAnns(coco.getAnnIds())
    assert len(anns) >= 12  # one to six shapes an image, most placed
    labels = set()
    for ann in anns:
        img = coco.loadImgs(ann['image_id'])[0]
        x, y, w, h = ann['bbox']
        assert w > 2 and h > 2
        assert x >= 0 and y >= 0
        assert x + w <= img['width'] and y + h <= img['height']
        assert ann['area'] == pytest.approx(w * h)
        labels.add(ann['category_id'])
        assert (root / 'train' / img['file_name']).is_file()
    assert len(labels) >= 3  # several classes show up in a dozen images


def test_boxes_are_tight_around_drawn_shapes(tmp_path):
    """A box encloses changed pixels: the shape differs from the background."""
    import cv2
    root = generate_toy_shapes(tmp_path / 'toy', SMALL)
    data = json.loads(
        (root / 'annotations' / 'instances_val.json').read_text())
    ann = data['annotations'][0]
    img = cv2.imread(
        str(root / 'val' / data['images'][ann['image_id']]['file_name']))
    x, y, w, h = (round(v) for v in ann['bbox'])
    inside = img[y:y + h, x:x + w].reshape(-1, 3).astype(np.float32)
    # a solid shape makes a large share of identical-colour pixels
    colours, counts = np.unique(inside.round(-1), axis=0, return_counts=True)
    assert counts.max() / len(inside) > 0.1


def _generate(root):
    generate_toy_shapes(root, SMALL)


def test_concurrent_generation_yields_one_complete_copy(tmp_path):
    root = tmp_path / 'toy'
    ctx = mp.get_context('fork')
    procs = [ctx.Process(target=_generate, args=(root, )) for _ in range(3)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert all(p.exitcode == 0 for p in procs)
    assert _digest(root) == _digest(
        generate_toy_shapes(tmp_path / 'ref', SMALL))
    assert not [p for p in tmp_path.iterdir() if p.name.startswith('.')]


def test_refuses_to_overwrite_a_foreign_folder(tmp_path):
    root = tmp_path / 'toy'
    root.mkdir()
    (root / 'mine.txt').write_text('user data')
    with pytest.raises(FileExistsError, match='not a ToyShapes'):
        generate_toy_shapes(root, SMALL)
    assert (root / 'mine.txt').read_text() == 'user data'


def test_registered_dataset_loads(toy_data):
    from mmdet.registry import DATASETS
    from mmengine.registry import init_default_scope
    init_default_scope('mmdet')
    ds = DATASETS.build(
        dict(
            type='ToyShapesDataset',
            data_root=str(toy_data) + '/',
            ann_file='annotations/instances_val.json',
            data_prefix=dict(img='val/'),
            test_mode=True,
            pipeline=[
                dict(type='LoadImageFromFile'),
                dict(type='LoadAnnotations', with_bbox=True),
                dict(type='PackDetInputs')
            ]))
    assert isinstance(ds, ToyShapesDataset)
    assert len(ds) == 100  # default split sizes
    sample = ds[0]
    assert tuple(sample['inputs'].shape) == (3, 256, 256)
    boxes = sample['data_samples'].gt_instances.bboxes.tensor
    assert len(boxes) > 0 and (boxes[:, 2:] <= 256).all()


def test_dataset_needs_data_root():
    with pytest.raises(ValueError, match='data_root'):
        ToyShapesDataset(ann_file='a.json')
