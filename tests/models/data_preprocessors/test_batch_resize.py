import random
from collections import Counter

import pytest
import torch
from mmdet.structures import DetDataSample
from mmengine.logging import MessageHub
from mmengine.structures import InstanceData

from rtdetr_mm.models.data_preprocessors import BatchRandomChoiceResize

DFINE_S = [480, 512, 544, 576, 608] + [640] * 20 + [672, 704, 736, 768, 800]
BOX = torch.tensor([[8., 4., 40., 20.]])


def sample(size):
    data_sample = DetDataSample(
        metainfo=dict(
            img_shape=(size, size),
            pad_shape=(size, size),
            batch_input_shape=(size, size)))
    data_sample.gt_instances = InstanceData(bboxes=BOX.clone())
    return data_sample


def test_sizes_follow_the_weights():
    random.seed(0)
    resize = BatchRandomChoiceResize(DFINE_S)
    sizes = Counter(resize._get_random_size(1.0, 'cpu') for _ in range(600))
    assert set(sizes) == {(s, s) for s in DFINE_S}
    assert 350 < sizes[(640, 640)] < 450  # 20 of the 30 scales


def test_batches_and_boxes_follow_the_drawn_size():
    random.seed(0)
    resize = BatchRandomChoiceResize([64, 96, 128])
    hub = MessageHub.get_instance('batch_random_choice_resize')
    seen = set()
    for iteration in range(12):
        hub.update_info('iter', iteration)
        inputs, samples = resize(torch.rand(2, 3, 64, 64), [sample(64)])
        size = inputs.shape[-1]
        seen.add(size)
        assert inputs.shape[-2:] == (size, size)
        assert samples[0].batch_input_shape == (size, size)
        torch.testing.assert_close(samples[0].gt_instances.bboxes,
                                   BOX * size / 64)
    assert seen == {64, 96, 128}


@pytest.mark.parametrize('scales', [[], [500], [640, 0], [640.0]])
def test_bad_scales(scales):
    with pytest.raises(ValueError, match='multiples of size_divisor'):
        BatchRandomChoiceResize(scales)
