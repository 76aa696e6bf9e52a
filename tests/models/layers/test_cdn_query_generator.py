import torch
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from rtdetr_mm.models.layers import RTDETRCdnQueryGenerator


def sample(num_boxes, size=(64, 64)):
    s = DetDataSample(metainfo=dict(img_shape=size))
    xy = torch.rand(num_boxes, 2) * 30
    s.gt_instances = InstanceData(
        bboxes=torch.cat([xy, xy + 10 + torch.rand(num_boxes, 2) * 20], 1),
        labels=torch.randint(0, 3, (num_boxes, )))
    return s


def generator():
    return RTDETRCdnQueryGenerator(
        num_classes=3,
        embed_dims=8,
        num_matching_queries=5,
        label_noise_scale=0.5,
        box_noise_scale=1.0,
        group_cfg=dict(dynamic=True, num_dn_queries=6))


def test_padding_row_and_pad_boxes():
    gen = generator()
    assert gen.label_embedding.weight.shape == (4, 8)
    assert torch.all(gen.label_embedding.weight[3] == 0)
    label_q, bbox_q, mask, meta = gen([sample(3), sample(1)])
    # 6 // 3 = 2 groups of 3 positives + 3 negatives
    assert meta == dict(num_denoising_queries=12, num_denoising_groups=2)
    assert label_q.shape == (2, 12, 8) and bbox_q.shape == (2, 12, 4)
    assert mask.shape == (17, 17)
    pad = torch.ones(12, dtype=torch.bool)
    pad[::3] = False  # image 2 has one target per 3-slot block
    assert torch.allclose(bbox_q[1, pad], torch.tensor(-11.5129), atol=1e-3)
    assert torch.all(label_q[1, pad] == 0)
    assert torch.all(bbox_q[0].abs() < 11.5)


def test_no_ground_truth():
    label_q, bbox_q, mask, meta = generator()([sample(0), sample(0)])
    assert label_q.shape == (2, 0, 8) and bbox_q.shape == (2, 0, 4)
    assert meta['num_denoising_queries'] == 0
