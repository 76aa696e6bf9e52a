"""BatchMixUp: DEIM's batch MixUp as a data preprocessor batch augment."""
import random

import pytest
import torch
from mmdet.models.data_preprocessors import DetDataPreprocessor
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from rtdetr_mm.models.data_preprocessors import BatchMixUp


def samples(*num_boxes):
    """One sample per count; box j of sample i is [i, j, i + 10, j + 10]."""
    out = []
    for i, n in enumerate(num_boxes):
        sample = DetDataSample(metainfo=dict(img_shape=(8, 8)))
        sample.gt_instances = InstanceData(
            bboxes=torch.tensor([[i, j, i + 10., j + 10.]
                                 for j in range(n)]).reshape(n, 4),
            labels=torch.full((n, ), i))
        out.append(sample)
    return out


def test_mixes_each_image_with_the_one_before_it():
    inputs = torch.rand(3, 3, 8, 8)
    mixed, out = BatchMixUp(
        prob=1.0, ratio_range=(0.3, 0.3))(inputs.clone(), samples(1, 2, 3))
    for i in range(3):
        torch.testing.assert_close(mixed[i],
                                   0.3 * inputs[i] + 0.7 * inputs[i - 1])
    # own boxes first, then those of the image mixed in (sample 0: the last)
    assert [s.gt_instances.labels.tolist() for s in out] == \
        [[0, 2, 2, 2], [1, 1, 0], [2, 2, 2, 1, 1]]
    assert out[0].gt_instances.bboxes[1:].tolist() == \
        [[2., j, 12., j + 10.] for j in range(3)]


def test_ratio_is_drawn_per_batch_in_the_range():
    random.seed(0)
    mixup = BatchMixUp(prob=1.0)
    inputs = torch.zeros(2, 1, 2, 2)
    inputs[0] = 1  # mixed image 0 = its own weight
    ratios = {
        round(float(mixup(inputs, samples(1, 1))[0][0, 0, 0, 0]), 6)
        for _ in range(20)
    }
    assert len(ratios) == 20
    assert all(0.45 <= r <= 0.55 for r in ratios)


def test_probability():
    random.seed(0)
    inputs = torch.rand(2, 3, 4, 4)
    never = BatchMixUp(prob=0.0)
    for _ in range(10):
        out, data_samples = never(inputs, samples(1, 2))
        assert out is inputs
        assert [len(s.gt_instances) for s in data_samples] == [1, 2]
    mixed = [
        not torch.equal(
            BatchMixUp(prob=0.5)(inputs, samples(1, 1))[0], inputs)
        for _ in range(400)
    ]
    assert 160 < sum(mixed) < 240
    always = BatchMixUp(prob=1.0)
    assert all(
        len(always(inputs, samples(1, 2))[1][0].gt_instances) == 3
        for _ in range(10))


def test_a_batch_of_one_is_unchanged():
    inputs = torch.rand(1, 3, 4, 4)
    out, data_samples = BatchMixUp(prob=1.0)(inputs, samples(2))
    assert out is inputs
    assert len(data_samples[0].gt_instances) == 2


def test_runs_first_in_the_data_preprocessor():
    preprocessor = DetDataPreprocessor(batch_augments=[
        dict(type='BatchMixUp', prob=1.0, ratio_range=(0.5, 0.5))
    ])
    images = [torch.full((3, 8, 8), 10.), torch.full((3, 8, 8), 30.)]
    data = preprocessor(
        dict(inputs=images, data_samples=samples(1, 1)), training=True)
    assert torch.all(data['inputs'] == 20.)
    assert [len(s.gt_instances) for s in data['data_samples']] == [2, 2]
    evaluation = preprocessor(
        dict(inputs=images, data_samples=samples(1, 1)), training=False)
    assert evaluation['inputs'][0].max() == 10.


@pytest.mark.parametrize('kwargs,match', [
    (dict(prob=-0.1), 'prob must be in'),
    (dict(prob=1.5), 'prob must be in'),
    (dict(prob='0.5'), 'prob must be in'),
    (dict(ratio_range=(0.6, 0.4)), 'ratio_range must be'),
    (dict(ratio_range=(0.5, )), 'ratio_range must be'),
    (dict(ratio_range=(-0.1, 0.5)), 'ratio_range must be'),
    (dict(ratio_range=(0.5, 1.2)), 'ratio_range must be'),
])
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        BatchMixUp(**kwargs)
