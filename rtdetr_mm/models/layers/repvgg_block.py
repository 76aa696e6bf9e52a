"""RepVGG block used by the CSPRep layers of RT-DETR's HybridEncoder."""
import torch
from mmcv.cnn import ConvModule, build_activation_layer
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..utils import fuse_conv_bn, merge_parallel_convs


class RepVGGBlock(BaseModule):
    """A 3x3 conv-BN branch plus a 1x1 conv-BN branch, then an activation.

    RT-DETR's RepVGG block has no identity branch (unlike RepVGG itself).
    ``switch_to_deploy()`` folds both branches into one biased 3x3 conv, in
    place; ``deploy=True`` builds that fused form directly so checkpoints
    saved after the switch load.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        norm_cfg (dict): Norm of both branches. Defaults to BN.
        act_cfg (dict): Activation after the sum. Defaults to
            ``dict(type='SiLU')``.
        deploy (bool): Build the fused single-conv form. Defaults to False.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> import torch
        >>> block = RepVGGBlock(8, 8).eval()
        >>> x = torch.rand(1, 8, 16, 16)
        >>> y = block(x)
        >>> block.switch_to_deploy()
        >>> torch.allclose(block(x), y, atol=1e-5)
        True
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 norm_cfg: ConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='SiLU'),
                 deploy: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.deploy = deploy
        if deploy:
            self.conv = nn.Conv2d(
                in_channels, out_channels, 3, 1, 1, bias=True)
        else:
            self.conv1 = ConvModule(
                in_channels,
                out_channels,
                3,
                1,
                1,
                norm_cfg=norm_cfg,
                act_cfg=None)
            self.conv2 = ConvModule(
                in_channels,
                out_channels,
                1,
                1,
                0,
                norm_cfg=norm_cfg,
                act_cfg=None)
        self.act = build_activation_layer(act_cfg) if act_cfg else \
            nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        if self.deploy:
            return self.act(self.conv(x))
        return self.act(self.conv1(x) + self.conv2(x))

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fuse the two conv-BN branches into ``self.conv`` (idempotent)."""
        if self.deploy:
            return
        self.conv = merge_parallel_convs(
            fuse_conv_bn(self.conv1.conv, self.conv1.bn),
            fuse_conv_bn(self.conv2.conv, self.conv2.bn))
        del self.conv1, self.conv2
        self.deploy = True
