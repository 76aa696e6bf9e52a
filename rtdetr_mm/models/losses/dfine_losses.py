"""D-FINE's localisation losses: FGL, DDF and the GO-LSD matching union.

`D-FINE <https://arxiv.org/abs/2410.13842>`_ (Sec. 3.2-3.3) trains the bin
distributions of :mod:`rtdetr_mm.models.layers.fdr` with

* the Fine-Grained Localization loss (FGL): a distribution focal loss on the
  two bins of W around each ground-truth edge distance, weighted by the IoU
  of the matched prediction;
* the Decoupled Distillation Focal loss (DDF): KL divergence from the last
  decoder layer's distributions (the teacher) to every other layer's,
  averaged separately over matched and unmatched queries;
* GO-LSD: the box losses (L1, GIoU, FGL, DDF) of every layer use the union
  of the Hungarian matchings of all layers.

Shapes: ``B`` batch, ``N`` queries, ``M`` matched queries, ``R = reg_max``
(an even number of bins minus one); boxes are normalised to [0, 1].

Non-finite values are never replaced (D-FINE's criterion ends with
``torch.nan_to_num(loss, nan=0.0)``, which hides a NaN term as a zero loss):
a NaN or inf input makes the term NaN/inf and ``FiniteLossHook`` (in the
default runtime) stops training naming the term.
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from mmdet.models.losses import weighted_loss
from mmdet.models.losses.kd_loss import knowledge_distillation_kl_div_loss
from mmdet.registry import MODELS
from mmdet.utils import reduce_mean
from torch import Tensor

from ..layers.fdr import check_reg_max

# (query_inds, gt_inds) of one image, each (K, ) int64
Pairs = Tuple[Tensor, Tensor]


def distance2bins(distance: Tensor,
                  project: Tensor) -> Tuple[Tensor, Tensor, Tensor]:
    """The two bins of W around each edge distance and their weights.

    D-FINE's ``translate_gt``: the left bin ``l`` is the last with
    ``W(l) <= d`` and the weights interpolate linearly between ``W(l)`` and
    ``W(l + 1)`` (non-uniform bins, so not ``d - l`` as in GFL). Outside
    ``[W(0), W(R)]`` all the weight goes to the end bin: ``d < W(0)`` gives
    ``l = 0, w_left = 1``; ``d >= W(R)`` gives ``l = R - 1, w_right = 1``.
    A NaN distance gives NaN weights (D-FINE: bin 0, weight 1).

    Args:
        distance (Tensor): (..., ) distances in units of W.
        project (Tensor): W, (R + 1, ) increasing.

    Returns:
        tuple[Tensor]: ``label`` (..., ) int64 left bin in [0, R - 1],
        ``weight_left`` and ``weight_right`` (..., ), summing to 1.
    """
    if project.dim() != 1:
        raise ValueError('project must be W, shape (reg_max + 1, ), got '
                         f'{tuple(project.shape)}')
    reg_max = project.numel() - 1
    check_reg_max(reg_max)
    project = project.to(distance)
    # (..., R + 1) -> (..., ): index of the last bin <= d, -1 below W(0)
    left = (project <= distance.unsqueeze(-1)).sum(-1) - 1
    inside = (left >= 0) & (left < reg_max)
    safe = left.clamp(0, reg_max - 1)
    left_value, right_value = project[safe], project[safe + 1]
    left_diff = (distance - left_value).abs()
    right_diff = (right_value - distance).abs()
    weight_right = torch.where(inside, left_diff / (left_diff + right_diff),
                               (left >= reg_max).to(distance))
    weight_left = 1.0 - weight_right
    nan = distance.isnan()
    weight_left = weight_left.masked_fill(nan, float('nan'))
    weight_right = weight_right.masked_fill(nan, float('nan'))
    return safe, weight_left, weight_right


@torch.no_grad()
def bbox2distance(points: Tensor, gt_bboxes: Tensor, project: Tensor,
                  reg_scale: float) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """FGL targets: edge distances of GT boxes from reference boxes, in the
    units of W, and their bins (D-FINE's ``bbox2distance``).

    The inverse of :func:`~rtdetr_mm.models.layers.fdr.distance2bbox`:
    ``d = (edge offset from the reference centre) / (size / reg_scale)
    - reg_scale / 2``, so the reference box's own edges are at d = 0.

    Args:
        points (Tensor): Reference boxes (..., 4) as (cx, cy, w, h).
        gt_bboxes (Tensor): Matched GT boxes (..., 4) as (x1, y1, x2, y2),
            in the same normalised coordinates.
        project (Tensor): W, (R + 1, ) (``DFINEHead.project``, from
            :func:`~rtdetr_mm.models.layers.fdr.weighting_function`).
        reg_scale (float): As in ``distance2bbox``.

    Returns:
        tuple[Tensor]: detached, each (..., 4) in the edge order left, top,
        right, bottom: ``distance`` (float), ``label`` (int64 left bin),
        ``weight_left``, ``weight_right`` (see :func:`distance2bins`).
    """
    if points.shape[-1] != 4 or points.shape != gt_bboxes.shape:
        raise ValueError('points and gt_bboxes must both be (..., 4), got '
                         f'{tuple(points.shape)} and '
                         f'{tuple(gt_bboxes.shape)}')
    reg_scale = abs(reg_scale)
    # 1e-16 as D-FINE: a zero-size reference gives a huge, clamped distance
    unit_w = points[..., 2] / reg_scale + 1e-16
    unit_h = points[..., 3] / reg_scale + 1e-16
    distance = torch.stack(
        [(points[..., 0] - gt_bboxes[..., 0]) / unit_w - 0.5 * reg_scale,
         (points[..., 1] - gt_bboxes[..., 1]) / unit_h - 0.5 * reg_scale,
         (gt_bboxes[..., 2] - points[..., 0]) / unit_w - 0.5 * reg_scale,
         (gt_bboxes[..., 3] - points[..., 1]) / unit_h - 0.5 * reg_scale], -1)
    return (distance, *distance2bins(distance, project))


def _num_bins(pred: Tensor) -> int:
    """``R + 1`` of bin logits (..., 4 * (R + 1)), R even >= 4."""
    num_bins, rest = divmod(pred.shape[-1], 4)
    if rest or num_bins < 5 or (num_bins - 1) % 2:
        raise ValueError('pred must be bin logits (..., 4 * (reg_max + 1)) '
                         'with reg_max an even int >= 4 (D-FINE: 32, last '
                         f'dim 132), got shape {tuple(pred.shape)}')
    return num_bins


@weighted_loss
def unimodal_distribution_focal_loss(pred: Tensor, label: Tensor,
                                     weight_left: Tensor,
                                     weight_right: Tensor) -> Tensor:
    """Cross-entropy on two neighbouring bins, with explicit weights.

    Args:
        pred (Tensor): Bin logits (K, R + 1).
        label (Tensor): Left bins (K, ) int64 in [0, R - 1].
        weight_left (Tensor): (K, ) weight of bin ``label``.
        weight_right (Tensor): (K, ) weight of bin ``label + 1``.

    Returns:
        Tensor: (K, ) ``-(w_l log p_l + w_r log p_r)``.
    """
    # one log-softmax for both bins (F.cross_entropy twice computes it twice)
    log_prob = F.log_softmax(pred, dim=-1)
    label = label.unsqueeze(-1)
    return -(
        log_prob.gather(-1, label).squeeze(-1) * weight_left +
        log_prob.gather(-1, label + 1).squeeze(-1) * weight_right)


@MODELS.register_module()
class FineGrainedLocalizationLoss(nn.Module):
    r"""Fine-Grained Localization loss of D-FINE (``loss_fgl``).

    For each edge of a matched query, with the bins :math:`l, l + 1` of W
    around the target distance and their weights from
    :func:`bbox2distance`, and the IoU :math:`q` of the query's predicted
    box with its GT:

    .. math::
        L = q\,(-w_l \log p_l - w_r \log p_{l+1}),

    summed over edges and queries and divided by ``avg_factor``
    (``num_boxes_go``).

    Why not mmdet's ``DistributionFocalLoss``: it takes a float label and
    derives the weights ``w_r = label - floor(label)``, i.e. linear
    interpolation between evenly spaced bins; D-FINE's bins W are not evenly
    spaced, so the weights interpolate between W's values and must be given
    (a float label ``l + w_r`` would also round ``w_r`` and cannot express
    ``w_r = 1`` on the last bin).

    Args:
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``. Defaults to
            ``'mean'`` (with ``avg_factor``: sum / avg_factor).
        loss_weight (float): Defaults to 1.0 (D-FINE: 0.15).

    Example:
        >>> import torch
        >>> loss = FineGrainedLocalizationLoss()
        >>> pred = torch.zeros(2, 4 * 9)  # reg_max 8, uniform
        >>> label = torch.full((2, 4), 3)
        >>> half = torch.full((2, 4), 0.5)
        >>> loss(pred, (label, half, half), avg_factor=8)  # log(9)
        tensor(2.1972)
    """

    def __init__(self,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        super().__init__()
        self.reduction = reduction
        self.loss_weight = loss_weight

    def forward(self,
                pred: Tensor,
                target: Tuple[Tensor, Tensor, Tensor],
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Bin logits (M, 4 * (R + 1)) (or any leading
                shape ``...`` instead of M).
            target (tuple[Tensor]): ``label``, ``weight_left``,
                ``weight_right``, each (M, 4), as :func:`bbox2distance`
                returns them.
            weight (Tensor, optional): Per query (M, ) (D-FINE: the IoU of
                the predicted box) or per edge (M, 4); detached here.
            avg_factor (float, optional): Normaliser (``num_boxes_go``).
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            Tensor: The loss (per edge, (M, 4), if the reduction is
            ``'none'``).
        """
        assert reduction_override in (None, 'none', 'mean', 'sum')
        reduction = reduction_override or self.reduction
        label, weight_left, weight_right = target
        num_bins = _num_bins(pred)
        edges = pred.shape[:-1] + (4, )
        for name, value in (('label', label), ('weight_left', weight_left),
                            ('weight_right', weight_right)):
            if value.shape != edges:
                raise ValueError(f'{name} must be {tuple(edges)} for pred '
                                 f'{tuple(pred.shape)}, got '
                                 f'{tuple(value.shape)}')
        if weight is not None:
            if weight.shape == edges[:-1]:
                weight = weight.unsqueeze(-1).expand(edges)
            elif weight.shape != edges:
                raise ValueError(
                    f'weight must be {tuple(edges[:-1])} (per query) or '
                    f'{tuple(edges)} (per edge), got {tuple(weight.shape)}')
            weight = weight.detach().float().reshape(-1)
        loss = unimodal_distribution_focal_loss(
            pred.reshape(-1, num_bins),  # (M * 4, R + 1)
            label.reshape(-1),
            weight,
            reduction=reduction,
            avg_factor=avg_factor,
            weight_left=weight_left.reshape(-1),
            weight_right=weight_right.reshape(-1))
        if reduction == 'none':
            loss = loss.reshape(edges)
        return self.loss_weight * loss


def ddf_weight(teacher_logits: Tensor, pos_mask: Tensor,
               ious: Tensor) -> Tensor:
    """DDF weight of every query: the IoU of its box for matched queries,
    the teacher's highest class probability for the others.

    Args:
        teacher_logits (Tensor): (B, N, num_classes) class logits of the
            teacher (last) layer.
        pos_mask (Tensor): (B, N) bool, matched queries (GO-LSD union).
        ious (Tensor): (B, N) IoU of this layer's predicted box with the
            matched GT; only read where ``pos_mask``.

    Returns:
        Tensor: (B, N), detached.
    """
    score = teacher_logits.detach().sigmoid().max(-1)[0]
    return torch.where(pos_mask, ious.detach().to(score), score)


@MODELS.register_module()
class DecoupledDistillationFocalLoss(nn.Module):
    r"""Decoupled Distillation Focal loss of D-FINE (``loss_ddf``).

    For every query and edge, with this layer's bin logits :math:`x`, the
    teacher's (last layer's, detached) :math:`t`, temperature :math:`T` and
    the query's weight :math:`w` (:func:`ddf_weight`):

    .. math::
        \ell = w\,T^2\,\mathrm{KL}\big(\mathrm{softmax}(t/T)\,\|\,
        \mathrm{softmax}(x/T)\big)

    summed over the bins; then the matched (pos) and unmatched (neg) edges
    are averaged separately and mixed with weights
    :math:`s = \sqrt{\#\mathrm{edges} \cdot 8 / B}` (the ``8 / B`` cancels):

    .. math::
        L = \frac{\bar\ell_{pos}\,s_{pos} + \bar\ell_{neg}\,s_{neg}}
                 {s_{pos} + s_{neg}}

    An empty part contributes 0. When ``pred`` equals ``teacher`` (the
    teacher layer itself) the loss is 0 (connected to ``pred``).

    mmdet's ``knowledge_distillation_kl_div_loss`` gives the per-edge KL
    (it averages over the bins, D-FINE sums: times ``R + 1``); its
    ``KnowledgeDistillationKLDivLoss`` has no decoupled reduction.

    Args:
        T (float): Temperature. Defaults to 5.
        loss_weight (float): Defaults to 1.0 (D-FINE: 1.5).

    Example:
        >>> import torch
        >>> loss = DecoupledDistillationFocalLoss()
        >>> pred, teacher = torch.randn(2, 3, 36), torch.randn(2, 3, 36)
        >>> pos_mask = torch.tensor([[True, False, False], [False] * 3])
        >>> loss(pred, teacher, torch.rand(2, 3), pos_mask).shape
        torch.Size([])
    """

    def __init__(self, T: float = 5.0, loss_weight: float = 1.0) -> None:
        super().__init__()
        self.T = T
        self.loss_weight = loss_weight

    @staticmethod
    def balance_weights(pos_mask: Tensor) -> Tuple[Tensor, Tensor]:
        """The mixing weights ``s_pos, s_neg`` of a (B, N) matched mask
        (``4 * count`` edges, ``8 / B`` as D-FINE)."""
        edges = pos_mask.unsqueeze(-1).expand(*pos_mask.shape, 4)
        batch_scale = 8 / pos_mask.shape[0]
        return ((edges.sum() * batch_scale)**0.5,
                ((~edges).sum() * batch_scale)**0.5)

    def forward(self,
                pred: Tensor,
                teacher: Tensor,
                weight: Tensor,
                pos_mask: Tensor,
                balance: Optional[Tuple[Tensor, Tensor]] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): (B, N, 4 * (R + 1)) bin logits of this layer.
            teacher (Tensor): (B, N, 4 * (R + 1)) of the last layer.
            weight (Tensor): (B, N) per query (:func:`ddf_weight`).
            pos_mask (Tensor): (B, N) bool, matched queries.
            balance (tuple[Tensor], optional): ``s_pos, s_neg``; defaults to
                :meth:`balance_weights` of ``pos_mask``. D-FINE's denoising
                layers use those of the matching queries' mask (the
                criterion caches them from the last non-denoising layer).

        Returns:
            Tensor: Scalar loss.
        """
        if pred.dim() != 3 or pred.shape != teacher.shape:
            raise ValueError('pred and teacher must both be (B, N, 4 * '
                             f'(reg_max + 1)), got {tuple(pred.shape)} and '
                             f'{tuple(teacher.shape)}')
        num_bins = _num_bins(pred)
        for name, value in (('weight', weight), ('pos_mask', pos_mask)):
            if value.shape != pred.shape[:2]:
                raise ValueError(f'{name} must be {tuple(pred.shape[:2])}, '
                                 f'got {tuple(value.shape)}')
        if pos_mask.dtype != torch.bool:
            raise TypeError(f'pos_mask must be bool, got {pos_mask.dtype}')
        if torch.equal(pred, teacher):
            return pred.sum() * 0
        s_pos, s_neg = balance or self.balance_weights(pos_mask)
        # (B, N, 4 * (R + 1)) -> (B * N * 4, R + 1) -> (B, N, 4)
        kl = knowledge_distillation_kl_div_loss(
            pred.reshape(-1, num_bins),
            teacher.reshape(-1, num_bins),
            T=self.T,
            reduction='none').reshape(*pred.shape[:2], 4) * num_bins
        loss = weight.detach().to(kl).unsqueeze(-1) * kl
        mask = pos_mask.unsqueeze(-1).expand_as(loss)
        # sums over a part / its count (0 for an empty part), no host sync
        mean_pos = torch.where(mask, loss, 0).sum() / mask.sum().clamp(min=1)
        mean_neg = torch.where(mask, 0,
                               loss).sum() / (~mask).sum().clamp(min=1)
        loss = (mean_pos * s_pos + mean_neg * s_neg) / (s_pos + s_neg)
        return self.loss_weight * loss


def _as_pairs(assignment) -> Pairs:
    """(query_inds, gt_inds) of a pair or of an ``AssignResult``-like
    object (``gt_inds``: 0 unmatched, k + 1 matched to GT k)."""
    if hasattr(assignment, 'gt_inds'):
        query_inds = torch.nonzero(
            assignment.gt_inds > 0, as_tuple=False).squeeze(-1)
        return query_inds, assignment.gt_inds[query_inds] - 1
    query_inds, gt_inds = assignment
    if query_inds.shape != gt_inds.shape or query_inds.dim() != 1:
        raise ValueError('an assignment must be (query_inds, gt_inds), both '
                         f'(K, ), got {tuple(query_inds.shape)} and '
                         f'{tuple(gt_inds.shape)}')
    return query_inds, gt_inds


def go_union_assignments(
    layer_assignments: Sequence[Sequence[Union[Pairs, object]]]
) -> Tuple[List[Pairs], float]:
    """GO-LSD's matching union over layers (D-FINE's ``_get_go_indices``).

    Per image, all (query, GT) pairs of all layers are counted; each query
    keeps the GT it is matched to most often (a GT may be kept by several
    queries). Ties are broken as D-FINE breaks them: by the order of a
    non-stable ``torch.argsort`` of the counts of the sorted unique pairs,
    arbitrary but reproducible for a given input, device and PyTorch.

    Args:
        layer_assignments (Sequence[Sequence]): One entry per layer (D-FINE:
            the last decoder layer, the other layers, layer 0's ``pre``
            boxes and the encoder proposals; the order does not matter),
            each one entry per image: a pair ``(query_inds, gt_inds)`` of
            (K, ) int64, or an mmdet ``AssignResult`` (``gt_inds`` (N, )).

    Returns:
        tuple: a list of ``(query_inds, gt_inds)`` per image, (K_img, )
        int64, sorted by query; and ``num_boxes_go``, the number of pairs
        in the batch averaged over GPUs and at least 1 (a float).
    """
    if not layer_assignments:
        raise ValueError('go_union_assignments needs at least one layer')
    num_imgs = len(layer_assignments[0])
    if any(len(layer) != num_imgs for layer in layer_assignments):
        raise ValueError('every layer needs one assignment per image, got '
                         f'{[len(layer) for layer in layer_assignments]}')
    results, device = [], torch.device('cpu')
    for img in range(num_imgs):
        pairs = [_as_pairs(layer[img]) for layer in layer_assignments]
        device = pairs[0][0].device
        # (K, 2) all (query, gt) pairs of this image over all layers
        pairs = torch.stack([
            torch.cat([q for q, _ in pairs]).long(),
            torch.cat([g for _, g in pairs]).long()
        ], -1)
        unique, counts = torch.unique(pairs, return_counts=True, dim=0)
        # D-FINE's order: by count, descending, with its non-stable sort
        # (ties as D-FINE breaks them), then a stable sort by query
        unique = unique[torch.argsort(counts, descending=True)]
        unique = unique[torch.sort(unique[:, 0], stable=True)[1]]
        first = torch.ones_like(unique[:, 0], dtype=torch.bool)
        first[1:] = unique[1:, 0] != unique[:-1, 0]
        unique = unique[first]  # (K_img, 2), one pair per query
        results.append((unique[:, 0], unique[:, 1]))
    num_boxes = torch.tensor([float(sum(len(q) for q, _ in results))],
                             device=device)
    num_boxes_go = reduce_mean(num_boxes).clamp(min=1).item()
    return results, num_boxes_go
