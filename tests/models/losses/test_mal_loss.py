import math

import pytest
import torch
import torch.nn.functional as F
from mmdet.registry import MODELS

from rtdetr_mm.models.losses import MatchabilityAwareLoss


def official_mal(logits, labels, ious, num_boxes, gamma=1.5, alpha=None):
    """The formula of DEIM's DEIMCriterion.loss_labels_mal."""
    num_classes = logits.shape[-1]
    target = F.one_hot(labels, num_classes + 1)[..., :-1].float()
    score = (ious[:, None] * target).pow(gamma)
    pred = logits.sigmoid().detach()
    weight = pred.pow(gamma) * (1 - target) + target
    if alpha is not None:
        weight = alpha * pred.pow(gamma) * (1 - target) + target
    loss = F.binary_cross_entropy_with_logits(
        logits, score, weight=weight, reduction='none')
    return loss.sum() / num_boxes


def bce(x, t):
    p = 1 / (1 + math.exp(-x))
    return -(t * math.log(p) + (1 - t) * math.log(1 - p))


def test_hand_computed_case():
    # one positive (class 1, IoU 0.64) and one background query, 2 classes
    logits = torch.tensor([[0.0, 2.0], [-1.0, 0.5]])
    labels = torch.tensor([1, 2])
    ious = torch.tensor([0.64, 0.0])
    ours = MatchabilityAwareLoss()(logits, (labels, ious), avg_factor=1)
    s = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
    expected = (
        s(0.0)**1.5 * bce(0.0, 0.0) +  # negative class of the positive query
        1.0 * bce(2.0, 0.64**1.5) +  # positive: weight 1, target IoU^1.5
        s(-1.0)**1.5 * bce(-1.0, 0.0) + s(0.5)**1.5 * bce(0.5, 0.0))
    assert ours.item() == pytest.approx(expected, rel=1e-6)


@pytest.mark.parametrize('alpha', [None, 0.5])
def test_matches_official_formula_and_gradient(alpha):
    torch.manual_seed(0)
    logits = torch.randn(6, 4, requires_grad=True)
    labels = torch.tensor([0, 4, 2, 4, 3, 1])  # 4 = background
    ious = torch.tensor([0.7, 0., 0.4, 0., 0., 0.9])  # label 3 has IoU 0
    cfg = dict(type='MatchabilityAwareLoss')
    if alpha is not None:
        cfg['alpha'] = alpha
    ours = MODELS.build(cfg)(logits, (labels, ious), avg_factor=4)
    ref_logits = logits.detach().clone().requires_grad_(True)
    ref = official_mal(ref_logits, labels, ious, 4, alpha=alpha)
    assert torch.allclose(ours, ref, atol=1e-6)
    ours.backward()
    ref.backward()
    assert torch.allclose(logits.grad, ref_logits.grad, atol=1e-6)


def test_differs_from_vfl_where_it_should():
    """A matched query with IoU 0 is pushed down with weight 1 (VFL gives it
    weight 0), and the positive target is sharpened to IoU^gamma."""
    logits = torch.tensor([[3.0, -5.0]])
    labels = torch.tensor([0])
    mal = MatchabilityAwareLoss()(
        logits, (labels, torch.tensor([0.0])), reduction_override='none')
    vfl = MODELS.build(dict(type='RTDETRVarifocalLoss'))(
        logits, (labels, torch.tensor([0.0])), reduction_override='none')
    assert vfl[0, 0].item() == 0
    assert mal[0, 0].item() == pytest.approx(bce(3.0, 0.0), rel=1e-6)
    with pytest.raises(ValueError, match='MatchabilityAwareLoss only'):
        MatchabilityAwareLoss(use_sigmoid=False)
