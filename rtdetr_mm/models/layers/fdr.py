"""D-FINE's box coding: Fine-grained Distribution Refinement (FDR).

A box is predicted as four edge distances from a fixed reference box, each a
probability distribution over ``reg_max + 1`` bins whose values are the
non-uniform weighting function W (`D-FINE <https://arxiv.org/abs/2410.13842>`_,
Eq. 2-3). The decoder, the head and the losses share these functions, so the
coding lives in one place.

Shapes: ``B`` batch, ``N`` queries, ``R = reg_max``; boxes are (cx, cy, w, h)
normalised to [0, 1].
"""
import torch
import torch.nn.functional as F
from mmengine.model import BaseModule
from mmengine.model.weight_init import constant_init
from torch import Tensor

from .mlp import MLP


def check_reg_max(reg_max: int) -> None:
    """``reg_max`` must be an even int >= 4: W has a centre bin
    ``reg_max / 2`` and at least one bin between it and each end."""
    if not isinstance(reg_max, int) or reg_max < 4 or reg_max % 2:
        raise ValueError(f'reg_max must be an even int >= 4 (D-FINE uses '
                         f'32), got {reg_max!r}')


def weighting_function(reg_max: int = 32,
                       up: float = 0.5,
                       reg_scale: float = 4.0) -> Tensor:
    """The bin values W(n), n = 0..reg_max, of D-FINE (float32).

    With ``a = |up| * |reg_scale|``: W(0) = -2a, W(reg_max) = 2a,
    W(reg_max / 2) = 0, and in between a geometric progression
    ``W(reg_max/2 + k) = -W(reg_max/2 - k) = step**k - 1`` with
    ``step = (a + 1) ** (2 / (reg_max - 2))``, so W(1) = -a, W(reg_max - 1)
    = a: fine steps near 0 (small corrections), coarse near the ends.

    Args:
        reg_max (int): Number of bins minus one, even >= 4. Defaults to 32.
        up (float): Upper bound of the fine range, as a fraction of
            ``reg_scale``. Defaults to 0.5.
        reg_scale (float): Curvature; larger is flatter near the centre.
            Defaults to 4.0.

    Returns:
        Tensor: (reg_max + 1, ), increasing, antisymmetric around the centre.
    """
    check_reg_max(reg_max)
    # float32 throughout, in D-FINE's order of operations: its training and
    # evaluation code computes W so (its deploy form rounds a float64
    # computation instead; the two differ by ~1e-6)
    a = torch.tensor([abs(up)]) * abs(reg_scale)
    step = (a + 1)**(2 / (reg_max - 2))
    half = reg_max // 2
    left = [-(step**k) + 1 for k in range(half - 1, 0, -1)]
    right = [step**k - 1 for k in range(1, half)]
    return torch.cat([-2 * a] + left + [torch.zeros(1)] + right + [2 * a])


def integral(pred_corners: Tensor, project: Tensor) -> Tensor:
    """Expected edge distances of the bin distributions.

    Args:
        pred_corners (Tensor): Bin logits (..., 4 * (R + 1)), edges in the
            order left, top, right, bottom.
        project (Tensor): The bin values W, (R + 1, ).

    Returns:
        Tensor: (..., 4) sum_n softmax(logits)_n * W(n) per edge.
    """
    num_bins = project.numel()
    prob = F.softmax(pred_corners.reshape(-1, num_bins), dim=1)
    return F.linear(prob, project).reshape(*pred_corners.shape[:-1], 4)


def distance2bbox(points: Tensor, distance: Tensor,
                  reg_scale: float) -> Tensor:
    """Boxes at edge distances from reference boxes.

    Each edge is ``(reg_scale / 2 + d) * size / reg_scale`` from the
    reference centre, so d = 0 reproduces the reference box and d is in
    units of ``size / reg_scale``.

    Args:
        points (Tensor): Reference boxes (..., 4) as (cx, cy, w, h).
        distance (Tensor): (..., 4) left, top, right, bottom.
        reg_scale (float): As in :func:`weighting_function`.

    Returns:
        Tensor: (..., 4) boxes as (cx, cy, w, h).
    """
    reg_scale = abs(reg_scale)
    centre, size = points[..., :2], points[..., 2:] / reg_scale
    top_left = centre - (0.5 * reg_scale + distance[..., :2]) * size
    bottom_right = centre + (0.5 * reg_scale + distance[..., 2:]) * size
    return torch.cat([(top_left + bottom_right) / 2, bottom_right - top_left],
                     -1)


class LQE(BaseModule):
    """Location Quality Estimator: a score correction from the sharpness of
    the edge distributions.

    The top-``topk`` bin probabilities of each edge and their mean
    (4 x (topk + 1) statistics) go through an MLP to one logit, added to
    every class logit. The last layer starts at zero (adds 0).

    Args:
        reg_max (int): Bins minus one of the distributions.
        topk (int): Probabilities kept per edge. Defaults to 4.
        hidden_dims (int): Hidden width of the MLP. Defaults to 64.
        num_layers (int): Layers of the MLP. Defaults to 2.
        act_cfg (dict): Activation of the MLP. Defaults to ReLU (D-FINE;
            DEIM's D-FINE uses its decoder activation, SiLU).
        init_cfg (dict, optional): Initialisation config.
    """

    def __init__(self,
                 reg_max: int,
                 topk: int = 4,
                 hidden_dims: int = 64,
                 num_layers: int = 2,
                 act_cfg: dict = dict(type='ReLU'),
                 init_cfg=None) -> None:
        super().__init__(init_cfg=init_cfg)
        check_reg_max(reg_max)
        self.reg_max, self.topk = reg_max, topk
        self.mlp = MLP(4 * (topk + 1), hidden_dims, 1, num_layers, act_cfg)
        self.init_weights()

    def init_weights(self) -> None:
        """Zero last layer: the estimator starts as a no-op."""
        constant_init(self.mlp.layers[-1], 0, bias=0)

    def forward(self, scores: Tensor, pred_corners: Tensor) -> Tensor:
        """Add the quality logit to ``scores``.

        Args:
            scores (Tensor): Class logits (..., num_classes).
            pred_corners (Tensor): Bin logits (..., 4 * (R + 1)).

        Returns:
            Tensor: (..., num_classes).
        """
        # (..., 4 * (R + 1)) -> (..., 4, R + 1)
        prob = pred_corners.unflatten(-1, (4, self.reg_max + 1)).softmax(-1)
        top = prob.topk(self.topk, dim=-1)[0]
        stat = torch.cat([top, top.mean(-1, keepdim=True)], -1)
        return scores + self.mlp(stat.flatten(-2))  # (..., 4 * (topk + 1))
