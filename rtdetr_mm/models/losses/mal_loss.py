"""Matchability-Aware Loss (DEIM)."""
from typing import Optional, Tuple

from mmdet.registry import MODELS
from torch import Tensor

from ..layers.varifocal_loss import RTDETRVarifocalLoss


@MODELS.register_module()
class MatchabilityAwareLoss(RTDETRVarifocalLoss):
    r"""Matchability-Aware Loss of `DEIM <https://arxiv.org/abs/2412.04234>`_
    (``DEIMCriterion.loss_labels_mal``).

    For logits :math:`x`, one-hot class targets :math:`o` and the IoU
    :math:`q` of each matched prediction with its ground truth:

    .. math::
        t = (q\,o)^{\gamma}, \qquad
        w = \alpha\,\mathrm{sg}(\sigma(x))^{\gamma}(1 - o) + o, \qquad
        L = w \cdot \mathrm{BCE}(x, t)

    Compared with the varifocal loss, the target is sharpened
    (:math:`q^\gamma`) and positives weigh 1 instead of :math:`q`, so a
    matched query with a poor box (low IoU, e.g. one the dense Mosaic/MixUp
    matching produced) still gets a full-weight, low-target signal. It takes
    the same ``(labels, ious)`` target as :class:`RTDETRVarifocalLoss`, so a
    config swaps one for the other in ``loss_cls`` of the RT-DETR or D-FINE
    head; the loss is normalised like the VFL (``avg_factor`` = number of
    boxes).

    Args:
        alpha (float): Weight of the negatives; DEIM's ``mal_alpha``,
            unset (1.0) in every official config. Defaults to 1.0.
        gamma (float): Exponent of the target and of the modulating factor.
            Defaults to 1.5 (DEIM).
        **kwargs: ``use_sigmoid`` (must be True), ``reduction`` and
            ``loss_weight``, as :class:`RTDETRVarifocalLoss`.

    Example:
        >>> import torch
        >>> mal = MatchabilityAwareLoss()
        >>> one_hot, ious = torch.tensor([[0., 1.]]), torch.tensor([0.64])
        >>> score, weight = mal.score_and_weight(torch.zeros(1, 2), one_hot,
        ...                                      ious)
        >>> score.tolist(), weight.tolist()  # 0.64 ** 1.5, 0.5 ** 1.5
        ([[0.0, 0.512...]], [[0.353..., 1.0]])
    """

    def __init__(self,
                 alpha: float = 1.0,
                 gamma: float = 1.5,
                 **kwargs) -> None:
        super().__init__(alpha=alpha, gamma=gamma, **kwargs)

    def score_and_weight(self, pred: Tensor, one_hot: Tensor,
                         ious: Tensor) -> Tuple[Tensor, Optional[Tensor]]:
        """BCE target ``(q o)^gamma`` and weight ``alpha sg(sigmoid(x))^gamma
        (1 - o) + o``, each (N, C)."""
        score = (one_hot * ious.unsqueeze(-1)).pow(self.gamma)
        weight = self.alpha * pred.detach().sigmoid().pow(
            self.gamma) * (1 - one_hot) + one_hot
        return score, weight
