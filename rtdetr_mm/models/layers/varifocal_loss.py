"""Varifocal loss with IoU-aware targets, as RT-DETR computes it."""
from typing import Optional, Tuple

import torch.nn.functional as F
from mmdet.models.losses import QualityFocalLoss
from mmdet.models.losses.utils import weight_reduce_loss
from mmdet.registry import MODELS
from torch import Tensor


@MODELS.register_module()
class RTDETRVarifocalLoss(QualityFocalLoss):
    r"""Varifocal loss of RT-DETR (``SetCriterion.loss_labels_vfl``).

    For logits :math:`x`, one-hot class targets :math:`o` and the IoU
    :math:`q` of each matched prediction with its ground truth:

    .. math::
        t = q\,o, \qquad
        w = \alpha\,\mathrm{sg}(\sigma(x))^{\gamma}(1 - o) + t, \qquad
        L = w \cdot \mathrm{BCE}(x, t)

    Why not mmdet's ``VarifocalLoss``: it lets gradients flow through the
    modulating factor (RT-DETR detaches :math:`\sigma(x)`), and it decides
    positive/negative from ``t > 0``, so a matched prediction with IoU 0 gets
    the negative weight instead of weight 0. This class takes the
    ``(labels, ious)`` target of mmdet's :class:`QualityFocalLoss`, so
    ``DETRHead``/``DINOHead`` build its IoU-aware targets unchanged (they
    compute the IoU of the detached predicted box for every positive).

    Args:
        use_sigmoid (bool): Must be True (sigmoid classification).
        alpha (float): Weight of the negatives. Defaults to 0.75.
        gamma (float): Exponent of the modulating factor. Defaults to 2.0.
        reduction (str): ``'none'``, ``'mean'`` or ``'sum'``.
        loss_weight (float): Weight of the loss. Defaults to 1.0.

    Example:
        >>> import torch
        >>> loss = RTDETRVarifocalLoss()
        >>> logits = torch.randn(4, 3)
        >>> labels = torch.tensor([0, 3, 2, 3])  # 3 = background
        >>> ious = torch.tensor([0.8, 0., 0.5, 0.])
        >>> loss(logits, (labels, ious), avg_factor=2).shape
        torch.Size([])
    """

    def __init__(self,
                 use_sigmoid: bool = True,
                 alpha: float = 0.75,
                 gamma: float = 2.0,
                 reduction: str = 'mean',
                 loss_weight: float = 1.0) -> None:
        if not use_sigmoid:
            raise ValueError(f'{type(self).__name__} only supports '
                             f'use_sigmoid=True, got {use_sigmoid}')
        super().__init__(
            use_sigmoid=True, reduction=reduction, loss_weight=loss_weight)
        self.alpha = alpha
        self.gamma = gamma

    def score_and_weight(self, pred: Tensor, one_hot: Tensor,
                         ious: Tensor) -> Tuple[Tensor, Tensor]:
        """BCE target ``t = q o`` and weight ``alpha sg(sigmoid(x))^gamma
        (1 - o) + t``, each (N, C), for logits ``pred`` (N, C), one-hot
        classes (N, C) and IoUs (N,)."""
        score = one_hot * ious.unsqueeze(-1)
        weight = self.alpha * pred.detach().sigmoid().pow(
            self.gamma) * (1 - one_hot) + score
        return score, weight

    def forward(self,
                pred: Tensor,
                target: Tuple[Tensor, Tensor],
                weight: Optional[Tensor] = None,
                avg_factor: Optional[float] = None,
                reduction_override: Optional[str] = None) -> Tensor:
        """Compute the loss.

        Args:
            pred (Tensor): Logits, shape (N, C).
            target (tuple[Tensor, Tensor]): ``labels`` (N,) in ``[0, C]``
                (``C`` is background) and ``ious`` (N,) of the positives.
            weight (Tensor, optional): Per-prediction weight, shape (N,).
            avg_factor (float, optional): Normaliser (number of boxes).
            reduction_override (str, optional): Overrides ``reduction``.

        Returns:
            Tensor: The loss (a scalar unless the reduction is ``'none'``).
        """
        assert reduction_override in (None, 'none', 'mean', 'sum')
        reduction = reduction_override or self.reduction
        labels, ious = target
        num_classes = pred.size(-1)
        # (N,) -> (N, C): one-hot without the background column
        one_hot = F.one_hot(labels, num_classes + 1)[:, :num_classes].to(pred)
        score, focal_weight = self.score_and_weight(pred, one_hot,
                                                    ious.to(pred))
        loss = F.binary_cross_entropy_with_logits(
            pred, score, weight=focal_weight, reduction='none')
        if weight is not None and weight.dim() == 1:
            weight = weight.unsqueeze(-1)
        loss = weight_reduce_loss(loss, weight, reduction, avg_factor)
        return self.loss_weight * loss
