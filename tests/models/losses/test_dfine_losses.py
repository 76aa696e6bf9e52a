"""D-FINE's FGL and DDF losses and the GO-LSD matching union, on cases
derived by hand (the official comparison is outside the repository)."""
import math

import pytest
import torch
from mmdet.models.task_modules import AssignResult
from mmdet.registry import MODELS

from rtdetr_mm.models.layers.fdr import weighting_function
from rtdetr_mm.models.losses import (DecoupledDistillationFocalLoss,
                                     FineGrainedLocalizationLoss,
                                     bbox2distance, ddf_weight, distance2bins,
                                     go_union_assignments)

SQRT3 = math.sqrt(3)
# reg_max 6, up 0.5, reg_scale 4: a = 2, step = 3 ** (1 / 2)
W6 = [-4.0, -2.0, 1 - SQRT3, 0.0, SQRT3 - 1, 2.0, 4.0]
P5 = torch.tensor([0.1, 0.2, 0.4, 0.2, 0.1])  # a distribution on 5 bins


def test_weighting_function_of_the_cases():
    torch.testing.assert_close(
        weighting_function(6, 0.5, 4.0), torch.tensor(W6))


def test_distance2bins_non_uniform_and_clamped():
    project = torch.tensor(W6)
    distance = torch.tensor([
        0.0,  # on bin 3
        2.0,  # on bin 5
        (SQRT3 - 1) / 2,  # halfway between bins 3 and 4
        3.0,  # halfway between bins 5 and 6
        1.0,  # between W(4) = 0.732 and W(5) = 2: not halfway
        -4.0,  # on W(0)
        -5.0,  # below W(0): all on bin 0
        4.0,  # on W(6): all on bin 6
        5.0,  # beyond W(6): all on bin 6
    ])
    label, w_left, w_right = distance2bins(distance, project)
    assert label.dtype == torch.int64
    assert label.tolist() == [3, 5, 3, 5, 4, 0, 0, 5, 5]
    right_at_1 = (2 - SQRT3) / (3 - SQRT3)  # (1 - W4) / (W5 - W4)
    torch.testing.assert_close(
        w_right,
        torch.tensor([0, 0, 0.5, 0.5, right_at_1, 0, 0, 1, 1]),
        rtol=0,
        atol=1e-6)
    torch.testing.assert_close(w_left, 1 - w_right)


def test_bbox2distance_by_hand():
    project = torch.tensor(W6)
    # reference (cx, cy, w, h): units w / 4 = 0.125, h / 4 = 0.0625
    points = torch.tensor([[0.5, 0.5, 0.5, 0.25]]).repeat(2, 1)
    gt = torch.tensor([
        [0.25, 0.375, 0.75, 0.625],  # the reference box: every d = 0
        # left d = 2 (bin 5), top d = 5 (beyond), right d = 3 (5.5),
        # bottom d = -5 (below W(0))
        [0.0, 0.0625, 1.125, 0.3125]
    ])
    distance, label, w_left, w_right = bbox2distance(points, gt, project, 4.0)
    assert distance.shape == label.shape == w_left.shape == (2, 4)
    torch.testing.assert_close(distance,
                               torch.tensor([[0., 0, 0, 0], [2, 5, 3, -5]]))
    assert label.tolist() == [[3, 3, 3, 3], [5, 5, 5, 0]]
    assert w_left.tolist() == [[1, 1, 1, 1], [1, 0, 0.5, 1]]
    assert w_right.tolist() == [[0, 0, 0, 0], [0, 1, 0.5, 0]]
    # a negative reg_scale acts as its absolute value, as in D-FINE
    assert torch.equal(bbox2distance(points, gt, project, -4.0)[1], label)


def test_bbox2distance_errors():
    points, gt = torch.rand(3, 4), torch.rand(3, 4)
    with pytest.raises(ValueError, match='points and gt_bboxes'):
        bbox2distance(points, gt[:2], torch.tensor(W6), 4.0)
    with pytest.raises(ValueError, match='reg_max must be an even int'):
        bbox2distance(points, gt, torch.linspace(-1, 1, 8), 4.0)  # R = 7
    with pytest.raises(ValueError, match='project must be W'):
        bbox2distance(points, gt, torch.zeros(2, 7), 4.0)


def fgl_pred(num_queries):
    """(num_queries, 4 * 5) logits whose every edge has distribution P5."""
    return P5.log().repeat(num_queries, 4)


def test_fgl_by_hand():
    loss = MODELS.build(dict(type='FineGrainedLocalizationLoss'))
    label = torch.ones(2, 4, dtype=torch.int64)  # bins 1 and 2
    w_left, w_right = torch.full((2, 4), 0.25), torch.full((2, 4), 0.75)
    per_edge = -(0.25 * math.log(0.2) + 0.75 * math.log(0.4))
    ious = torch.tensor([0.5, 1.0])
    value = loss(fgl_pred(2), (label, w_left, w_right), ious, avg_factor=3)
    assert value.item() == pytest.approx(1.5 * 4 * per_edge / 3, rel=1e-6)
    # one-hot target (an edge on a bin): plain cross-entropy
    one_hot = loss(
        fgl_pred(1), (label[:1], torch.ones(1, 4), torch.zeros(1, 4)),
        avg_factor=4)
    assert one_hot.item() == pytest.approx(-math.log(0.2), rel=1e-6)
    # reduction 'none' gives the weighted loss per edge; loss_weight scales
    none = FineGrainedLocalizationLoss(
        reduction='none',
        loss_weight=0.15)(fgl_pred(2), (label, w_left, w_right),
                          ious[:, None].expand(2, 4))
    assert none.shape == (2, 4)
    torch.testing.assert_close(none,
                               0.15 * ious[:, None].expand(2, 4) * per_edge)


def test_fgl_gradient_is_p_minus_target():
    pred = fgl_pred(1).requires_grad_()
    label = torch.tensor([[1, 1, 2, 3]])
    w_right = torch.tensor([[0.75, 0.0, 1.0, 0.5]])
    FineGrainedLocalizationLoss()(
        pred, (label, 1 - w_right, w_right), avg_factor=1).backward()
    target = torch.zeros(4, 5)
    target[torch.arange(4), label[0]] = 1 - w_right[0]
    target[torch.arange(4), label[0] + 1] += w_right[0]
    torch.testing.assert_close(pred.grad.reshape(4, 5), P5 - target)


def test_fgl_nan_is_not_hidden():
    # a NaN edge distance (D-FINE: bin 0, weight 1) makes the loss NaN
    label, w_left, w_right = distance2bins(
        torch.tensor([[0.0, float('nan'), 0.0, 0.0]]), torch.tensor(W6))
    assert label.tolist() == [[3, 0, 3, 3]]
    pred = torch.zeros(1, 4 * 7)
    assert FineGrainedLocalizationLoss()(pred,
                                         (label, w_left, w_right)).isnan()


def test_fgl_errors():
    loss = FineGrainedLocalizationLoss()
    target = (torch.zeros(2, 4,
                          dtype=torch.int64), torch.ones(2,
                                                         4), torch.zeros(2, 4))
    with pytest.raises(ValueError, match=r'got shape \(2, 21\)'):
        loss(torch.zeros(2, 21), target)  # not 4 * (R + 1)
    with pytest.raises(ValueError, match='reg_max an even int'):
        loss(torch.zeros(2, 32), target)  # R = 7
    with pytest.raises(ValueError, match=r'label must be \(3, 4\)'):
        loss(torch.zeros(3, 20), target)
    with pytest.raises(ValueError, match='weight must be'):
        loss(torch.zeros(2, 20), target, torch.ones(3))


def ddf_case():
    """1 image, 4 queries (5 bins, T 5): query 0 uniform against teacher
    P5, queries 1-3 equal to the teacher."""
    teacher = torch.randn(1, 4, 20)
    teacher[0, 0] = 5 * P5.log().repeat(4)  # softmax(t / T) = P5
    pred = teacher.clone()
    pred[0, 0] = 0
    kl = (P5 * (P5 / 0.2).log()).sum().item()  # KL(P5 || uniform)
    return pred, teacher, 25 * kl  # T^2 * KL per edge


def test_ddf_decoupled_by_hand():
    torch.manual_seed(0)
    loss = MODELS.build(dict(type='DecoupledDistillationFocalLoss', T=5))
    pred, teacher, per_edge = ddf_case()
    weight = torch.tensor([[0.5, 0.9, 0.8, 0.7]])
    pos_mask = torch.tensor([[True, False, False, False]])
    # s_pos = sqrt(4 * 8), s_neg = sqrt(12 * 8); the negatives' KL is 0
    value = loss(pred, teacher, weight, pos_mask)
    assert value.item() == pytest.approx(
        0.5 * per_edge / (1 + SQRT3), rel=1e-5)
    # queries 0 and 1 matched: positive mean 0.5 * per_edge / 2, equal
    # mixing weights sqrt(8 * 8)
    pos_mask[0, 1] = True
    value = loss(pred, teacher, weight, pos_mask)
    assert value.item() == pytest.approx(0.5 * per_edge / 4, rel=1e-5)
    # given balance weights (D-FINE's denoising layers)
    value = loss(pred, teacher, weight, pos_mask, balance=(1.0, 3.0))
    assert value.item() == pytest.approx(0.5 * per_edge / 8, rel=1e-5)


def test_ddf_all_matched_is_the_positive_mean():
    torch.manual_seed(0)
    pred, teacher, per_edge = ddf_case()
    weight = torch.tensor([[0.5, 0.9, 0.8, 0.7]])
    value = DecoupledDistillationFocalLoss(loss_weight=1.5)(
        pred, teacher, weight, torch.ones(1, 4, dtype=torch.bool))
    # mean over 16 edges, 4 of them 0.5 * per_edge
    assert value.item() == pytest.approx(1.5 * 0.5 * per_edge / 4, rel=1e-5)
    assert DecoupledDistillationFocalLoss.balance_weights(
        torch.ones(2, 4, dtype=torch.bool))[1] == 0


def test_ddf_teacher_layer_is_zero_with_a_graph():
    pred = torch.randn(2, 3, 20, requires_grad=True)
    value = DecoupledDistillationFocalLoss()(pred, pred.detach().clone(),
                                             torch.ones(2, 3),
                                             torch.zeros(2, 3, dtype=bool))
    assert value.item() == 0
    value.backward()
    assert torch.equal(pred.grad, torch.zeros_like(pred))


def test_ddf_weight():
    logits = torch.tensor([[[0.0, 2.0], [-1.0, -3.0], [1.0, 0.0]]])
    pos_mask = torch.tensor([[False, True, False]])
    ious = torch.tensor([[7.0, 0.25, 7.0]])  # read only where matched
    torch.testing.assert_close(
        ddf_weight(logits, pos_mask, ious),
        torch.tensor(
            [[torch.tensor(2.0).sigmoid(), 0.25,
              torch.tensor(1.0).sigmoid()]]))


def test_ddf_errors():
    loss = DecoupledDistillationFocalLoss()
    pred, mask = torch.zeros(1, 3, 20), torch.zeros(1, 3, dtype=torch.bool)
    with pytest.raises(ValueError, match='pred and teacher'):
        loss(pred, torch.zeros(1, 4, 20), torch.ones(1, 3), mask)
    with pytest.raises(ValueError, match='reg_max an even int'):
        loss(
            torch.zeros(1, 3, 24), torch.zeros(1, 3, 24), torch.ones(1, 3),
            mask)  # R = 5
    with pytest.raises(ValueError, match=r'weight must be \(1, 3\)'):
        loss(pred, pred + 1, torch.ones(3), mask)
    with pytest.raises(TypeError, match='pos_mask must be bool'):
        loss(pred, pred + 1, torch.ones(1, 3), torch.zeros(1, 3))


def pairs(*qg):
    return (torch.tensor([q for q, _ in qg], dtype=torch.int64),
            torch.tensor([g for _, g in qg], dtype=torch.int64))


def test_go_union_keeps_the_most_frequent_pair():
    empty = pairs()
    layers = [
        [pairs((0, 0), (1, 1), (2, 2)), empty],
        [pairs((0, 0), (1, 2), (3, 1)), empty],
        [pairs((1, 1)), empty],
    ]
    union, num_boxes_go = go_union_assignments(layers)
    # query 1: GT 1 twice, GT 2 once; GT 1 is kept by queries 1 and 3
    assert union[0][0].tolist() == [0, 1, 2, 3]
    assert union[0][1].tolist() == [0, 1, 2, 1]
    assert union[1][0].numel() == union[1][1].numel() == 0
    assert union[0][0].dtype == torch.int64
    assert num_boxes_go == 4.0


def test_go_union_tie_and_assign_results():
    # query 5: GT 0 in one layer, GT 1 in the other; as AssignResult
    # (gt_inds 0 = unmatched, k + 1 = GT k) and as pairs
    gt_inds = torch.zeros(6, dtype=torch.int64)
    gt_inds[5] = 1
    result = AssignResult(2, gt_inds, torch.zeros(6), labels=gt_inds)
    union, num_boxes_go = go_union_assignments([[result], [pairs((5, 1))]])
    assert union[0][0].tolist() == [5] and union[0][1].item() in (0, 1)
    assert num_boxes_go == 1.0
    # no GT anywhere: at least 1
    _, num_boxes_go = go_union_assignments([[pairs(), pairs()]])
    assert num_boxes_go == 1.0


def test_go_union_errors():
    with pytest.raises(ValueError, match='one assignment per image'):
        go_union_assignments([[pairs()], [pairs(), pairs()]])
    with pytest.raises(ValueError, match='at least one layer'):
        go_union_assignments([])
    with pytest.raises(ValueError, match=r'\(query_inds, gt_inds\)'):
        go_union_assignments([[(torch.arange(3), torch.arange(2))]])
