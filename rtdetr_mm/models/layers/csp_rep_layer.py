"""CSPRep layer: the fusion block of RT-DETR's CCFM (top-down/bottom-up)."""
from mmcv.cnn import ConvModule
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from .repvgg_block import RepVGGBlock


class CSPRepLayer(BaseModule):
    """Cross-stage-partial layer whose bottlenecks are RepVGG blocks.

    ``out = conv3(bottlenecks(conv1(x)) + conv2(x))`` with two 1x1 conv-BN-act
    stems of ``int(out_channels * expansion)`` channels; ``conv3`` (1x1) is an
    identity when that width equals ``out_channels``.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        num_blocks (int): Number of RepVGG blocks. Defaults to 3.
        expansion (float): Hidden width ratio. Defaults to 1.0.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to ``dict(type='SiLU')``.
        deploy (bool): Build the RepVGG blocks in their fused form.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> import torch
        >>> layer = CSPRepLayer(16, 8, num_blocks=1, expansion=0.5)
        >>> layer(torch.rand(1, 16, 10, 12)).shape
        torch.Size([1, 8, 10, 12])
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 num_blocks: int = 3,
                 expansion: float = 1.0,
                 norm_cfg: ConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='SiLU'),
                 deploy: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        hidden = int(out_channels * expansion)
        self.conv1 = ConvModule(
            in_channels, hidden, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.conv2 = ConvModule(
            in_channels, hidden, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        self.bottlenecks = nn.Sequential(*[
            RepVGGBlock(
                hidden,
                hidden,
                norm_cfg=norm_cfg,
                act_cfg=act_cfg,
                deploy=deploy) for _ in range(num_blocks)
        ])
        if hidden != out_channels:
            self.conv3 = ConvModule(
                hidden, out_channels, 1, norm_cfg=norm_cfg, act_cfg=act_cfg)
        else:
            self.conv3 = nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        return self.conv3(self.bottlenecks(self.conv1(x)) + self.conv2(x))
