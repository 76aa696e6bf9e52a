"""mmdet's MLP with a configurable activation."""
from mmcv.cnn import build_activation_layer
from mmdet.models.layers import MLP as _MMDetMLP
from torch import Tensor


class MLP(_MMDetMLP):
    """mmdet's :class:`~mmdet.models.layers.MLP` (``num_layers`` linear
    layers, an activation between them) with the activation from
    ``act_cfg``: ReLU is mmdet's, RT-DETR's and D-FINE's; DEIM's models use
    SiLU (``mlp_act: silu``). Same module names (``layers.i``), so
    checkpoints load either way.

    Args:
        input_dim (int): Input channels.
        hidden_dim (int): Hidden channels.
        output_dim (int): Output channels.
        num_layers (int): Linear layers.
        act_cfg (dict): Activation between the layers. Defaults to ReLU.

    Example:
        >>> import torch
        >>> mlp = MLP(4, 8, 2, 3, act_cfg=dict(type='SiLU'))
        >>> tuple(mlp(torch.rand(5, 4)).shape)
        (5, 2)
    """

    def __init__(self,
                 input_dim: int,
                 hidden_dim: int,
                 output_dim: int,
                 num_layers: int,
                 act_cfg: dict = dict(type='ReLU')) -> None:
        super().__init__(input_dim, hidden_dim, output_dim, num_layers)
        self.act = build_activation_layer(act_cfg)

    def forward(self, x: Tensor) -> Tensor:
        """(..., input_dim) -> (..., output_dim)."""
        for i, layer in enumerate(self.layers):
            x = layer(x)
            if i < self.num_layers - 1:
                x = self.act(x)
        return x
