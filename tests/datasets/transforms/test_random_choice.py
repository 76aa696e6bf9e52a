"""MultiImageRandomChoice: one branch per sample, Mosaic's in a wrapper."""
from collections import Counter

import numpy as np
import pytest
from mmcv.transforms import BaseTransform
from mmdet.datasets import MultiImageMixDataset
from mmdet.datasets.transforms import Mosaic
from mmdet.structures.bbox import HorizontalBoxes
from mmengine.dataset import BaseDataset

from rtdetr_mm.datasets.transforms import MultiImageRandomChoice


class Boxes(BaseDataset):
    """32x32 images, each with one box labelled with its index."""

    def __init__(self, num=8):
        self.num = num
        super().__init__(serialize_data=False)

    def load_data_list(self):
        return [dict(index=i) for i in range(self.num)]

    def prepare_data(self, idx):
        return dict(
            img=np.full((32, 32, 3), idx, np.uint8),
            img_shape=(32, 32),
            gt_bboxes=HorizontalBoxes(
                np.array([[4., 4., 20., 20.]], np.float32)),
            gt_bboxes_labels=np.array([idx]),
            gt_ignore_flags=np.array([False]))


class Mark(BaseTransform):
    """Appends its name to ``results['ran']``."""

    def __init__(self, name):
        self.name = name

    def transform(self, results):
        results['ran'] = results.get('ran', []) + [self.name]
        return results


def mosaic_or_other(prob):
    return dict(
        type='MultiImageRandomChoice',
        transforms=[[
            Mosaic(img_scale=(32, 32), center_ratio_range=(1., 1.)),
            Mark('mosaic')
        ], [Mark('other')]],
        prob=prob)


def test_one_branch_per_sample_with_its_mixed_images():
    np.random.seed(0)
    dataset = MultiImageMixDataset(Boxes(), [mosaic_or_other([0.3, 0.7])])
    branches = Counter()
    for i in range(400):
        results = dataset[i % 8]
        branches['+'.join(results['ran'])] += 1
        labels = results['gt_bboxes_labels']
        if results['ran'] == ['mosaic']:
            # the sample at the top left and three drawn images, uncut
            assert results['img'].shape[:2] == (64, 64)
            assert len(labels) == 4 and labels[0] == i % 8
        else:
            assert results['img'].shape[:2] == (32, 32)
            assert labels.tolist() == [i % 8]
        assert 'mix_results' not in results
    assert set(branches) == {'mosaic', 'other'}  # never both
    assert 90 < branches['mosaic'] < 150  # 0.3 of 400


def test_get_indexes_asks_the_drawn_branch():
    choice = MultiImageRandomChoice(
        mosaic_or_other([1.0, 0.0])['transforms'], prob=[1.0, 0.0])
    indexes = choice.get_indexes(Boxes())
    assert len(indexes) == 3 and all(0 <= i < 8 for i in indexes)
    choice.prob = [0.0, 1.0]
    assert choice.get_indexes(Boxes()) == []


def test_outside_a_mix_dataset():
    plain = MultiImageRandomChoice([[Mark('a')], [Mark('b')]])
    assert plain(dict())['ran'] in (['a'], ['b'])
    mixing = MultiImageRandomChoice(mosaic_or_other(None)['transforms'])
    with pytest.raises(RuntimeError, match='MultiImageMixDataset'):
        mixing(dict(img=np.zeros((32, 32, 3), np.uint8)))


def test_one_mixing_transform_per_branch():
    with pytest.raises(ValueError, match="branch 1 has 2 .*'Mosaic'"):
        MultiImageRandomChoice([[Mark('a')], [Mosaic(), Mosaic()]])
