import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

from rtdetr_mm.models.layers import RTDETRVarifocalLoss


def official_vfl(logits, labels, ious, num_boxes, alpha=0.75, gamma=2.0):
    """The formula of RT-DETR's SetCriterion.loss_labels_vfl."""
    num_classes = logits.shape[-1]
    target = F.one_hot(labels, num_classes + 1)[..., :-1].float()
    score = ious[:, None] * target
    weight = alpha * logits.sigmoid().detach().pow(gamma) * (1 - target) + \
        score
    loss = F.binary_cross_entropy_with_logits(
        logits, score, weight=weight, reduction='none')
    return loss.sum() / num_boxes


def test_matches_official_formula_and_gradient():
    torch.manual_seed(0)
    logits = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, 4, 2, 4, 3, 1])  # 4 = background
    ious = torch.tensor([0.7, 0., 0.4, 0., 0., 0.9])  # label 3 has IoU 0
    loss = MODELS.build(dict(type='RTDETRVarifocalLoss'))
    ours = loss(logits, (labels, ious), avg_factor=4)
    ref_logits = logits.detach().clone().requires_grad_(True)
    ref = official_vfl(ref_logits, labels, ious, 4)
    assert torch.allclose(ours, ref, atol=1e-6)
    ours.backward()
    ref.backward()
    assert torch.allclose(logits.grad, ref_logits.grad, atol=1e-6)


def test_label_weights_and_errors():
    logits = torch.randn(3, 2)
    labels = torch.tensor([0, 2, 1])
    ious = torch.tensor([0.5, 0., 0.2])
    loss = RTDETRVarifocalLoss(loss_weight=2.0)
    full = loss(logits, (labels, ious), reduction_override='none')
    assert full.shape == (3, 2)
    weighted = loss(
        logits, (labels, ious),
        weight=torch.tensor([1., 0., 1.]),
        reduction_override='sum')
    assert torch.allclose(weighted, full[[0, 2]].sum())
    with pytest.raises(ValueError, match='use_sigmoid=True'):
        RTDETRVarifocalLoss(use_sigmoid=False)
