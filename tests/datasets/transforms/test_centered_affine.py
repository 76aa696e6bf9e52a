"""CenteredRandomAffine: mmdet's RandomAffine about the image centre."""
import numpy as np
import pytest
from mmdet.datasets.transforms import RandomAffine
from mmdet.structures.bbox import HorizontalBoxes

from rtdetr_mm.datasets.transforms import CenteredRandomAffine

HALF = dict(
    max_rotate_degree=0,
    max_translate_ratio=0,
    scaling_ratio_range=(0.5, 0.5),
    max_shear_degree=0,
    border_val=(0, 0, 0))


def warp(transform):
    return transform.transform(
        dict(
            img=np.full((100, 60, 3), 255, np.uint8),
            gt_bboxes=HorizontalBoxes(
                np.array([[20., 40., 40., 60.]], np.float32)),
            gt_bboxes_labels=np.array([0]),
            gt_ignore_flags=np.array([False])))


def extent(img):
    ys, xs = np.nonzero(img[..., 0])
    return xs.min(), xs.max() + 1, ys.min(), ys.max() + 1


def test_scales_about_the_centre():
    results = warp(CenteredRandomAffine(**HALF))
    assert results['img'].shape == (100, 60, 3)
    assert extent(results['img']) == (15, 45, 25, 75)
    np.testing.assert_allclose(results['gt_bboxes'].numpy(),
                               [[25., 45., 35., 55.]])
    # mmdet's scales about the top-left corner
    assert extent(warp(RandomAffine(**HALF))['img']) == (0, 30, 0, 50)


@pytest.mark.parametrize('seed', range(5))
def test_rotation_and_scale_keep_the_centre_translation_moves_it(seed):
    np.random.seed(seed)
    fixed = CenteredRandomAffine(max_translate_ratio=0, max_shear_degree=3)
    centre = np.array([30., 50., 1.])
    warp_matrix = fixed._get_random_homography_matrix(100, 60)
    assert not np.allclose(warp_matrix[:2, :2], np.eye(2))
    np.testing.assert_allclose(warp_matrix @ centre, centre, atol=1e-4)
    moved = CenteredRandomAffine(max_translate_ratio=0.1)
    shift = moved._get_random_homography_matrix(100, 60) @ centre - centre
    assert abs(shift[0]) <= 6 + 1e-4 and abs(shift[1]) <= 10 + 1e-4
