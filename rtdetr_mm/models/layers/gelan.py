"""GELAN blocks of D-FINE's HybridEncoder: RepNCSPELAN4 and SCDown.

D-FINE (arXiv:2410.13842) keeps RT-DETR's encoder skeleton but fuses levels
with YOLOv9's RepNCSPELAN4 and down-samples with YOLOv10's SCDown. Neither
mmdet nor mmyolo ships these blocks, so they are built here from mmcv's
``ConvModule`` and our :class:`CSPRepLayer` (which, with ``expansion=1``,
is exactly D-FINE's ``CSPLayer`` of ``VGGBlock`` bottlenecks).
"""
import torch
from mmcv.cnn import ConvModule
from mmdet.utils import ConfigType, OptMultiConfig
from mmengine.model import BaseModule
from torch import Tensor, nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..utils import fuse_conv_norm_in, switch_submodules_to_deploy
from .csp_rep_layer import CSPRepLayer


def _fuse_conv_modules(module: nn.Module) -> None:
    """Fold the BatchNorm of every ``ConvModule`` under ``module`` into its
    conv (``bn`` becomes ``nn.Identity``); already folded ones are skipped."""
    for m in list(module.modules()):
        if isinstance(m, ConvModule) and isinstance(
                getattr(m, m.norm_name, None), _BatchNorm):
            fuse_conv_norm_in(m, 'conv', m.norm_name)


class RepNCSPELAN4(BaseModule):
    """YOLOv9's RepNCSPELAN4 block, as D-FINE's encoder uses it.

    ``cv1`` (1x1) maps the input to ``mid_channels`` that split into halves
    ``a`` and ``b``; ``c = cv2(b)`` and ``d = cv3(c)``, where ``cv2`` and
    ``cv3`` are a :class:`CSPRepLayer` (expansion 1) followed by a 3x3 conv;
    ``out = cv4(cat[a, b, c, d])`` (1x1). Every conv is conv-BN-act.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        mid_channels (int): Channels of ``cv1``'s output (even).
        branch_channels (int): Channels of ``cv2`` and ``cv3``.
        num_blocks (int): RepVGG blocks per CSPRep layer. Defaults to 1.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        act_cfg (dict): Activation config. Defaults to ``dict(type='SiLU')``.
        deploy (bool): Build the fused form of :meth:`switch_to_deploy`
            (biased convs, no norms). Defaults to False.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> import torch
        >>> block = RepNCSPELAN4(16, 8, 16, 4, num_blocks=1)
        >>> block(torch.rand(1, 16, 10, 12)).shape
        torch.Size([1, 8, 10, 12])
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 mid_channels: int,
                 branch_channels: int,
                 num_blocks: int = 1,
                 norm_cfg: ConfigType = dict(type='BN'),
                 act_cfg: ConfigType = dict(type='SiLU'),
                 deploy: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if mid_channels % 2 or mid_channels <= 0 or branch_channels <= 0:
            raise ValueError(
                'RepNCSPELAN4 needs an even positive mid_channels (it is '
                'split in two halves) and a positive branch_channels, got '
                f'mid_channels={mid_channels}, '
                f'branch_channels={branch_channels}')
        self.half = mid_channels // 2
        norm = None if deploy else norm_cfg  # deploy: biased convs

        def conv(c_in: int, c_out: int, kernel_size: int) -> ConvModule:
            return ConvModule(
                c_in,
                c_out,
                kernel_size,
                padding=kernel_size // 2,
                norm_cfg=norm,
                act_cfg=act_cfg)

        def branch(c_in: int) -> nn.Sequential:
            return nn.Sequential(
                CSPRepLayer(
                    c_in,
                    branch_channels,
                    num_blocks,
                    1.0,
                    norm,
                    act_cfg,
                    deploy=deploy), conv(branch_channels, branch_channels, 3))

        self.cv1 = conv(in_channels, mid_channels, 1)
        self.cv2 = branch(self.half)
        self.cv3 = branch(branch_channels)
        self.cv4 = conv(mid_channels + 2 * branch_channels, out_channels, 1)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, H, W)."""
        # (B, mid, H, W) -> 2 x (B, mid / 2, H, W)
        outs = list(self.cv1(x).split((self.half, self.half), dim=1))
        outs.append(self.cv2(outs[-1]))  # (B, branch, H, W)
        outs.append(self.cv3(outs[-1]))  # (B, branch, H, W)
        return self.cv4(torch.cat(outs, dim=1))

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fuse the RepVGG blocks and fold every BN into its conv, in place
        (idempotent)."""
        switch_submodules_to_deploy(self)
        _fuse_conv_modules(self)


class SCDown(BaseModule):
    """YOLOv10's spatial-channel decoupled down-sampling, as in D-FINE.

    A 1x1 conv-BN (channels), then a depthwise ``kernel_size`` conv-BN with
    ``stride`` (space); no activation in either.

    Args:
        in_channels (int): Input channels.
        out_channels (int): Output channels.
        kernel_size (int): Kernel of the depthwise conv. Defaults to 3.
        stride (int): Stride of the depthwise conv. Defaults to 2.
        norm_cfg (dict): Norm config. Defaults to ``dict(type='BN')``.
        deploy (bool): Build the fused form of :meth:`switch_to_deploy`.
            Defaults to False.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> import torch
        >>> SCDown(8, 16)(torch.rand(1, 8, 10, 12)).shape
        torch.Size([1, 16, 5, 6])
    """

    def __init__(self,
                 in_channels: int,
                 out_channels: int,
                 kernel_size: int = 3,
                 stride: int = 2,
                 norm_cfg: ConfigType = dict(type='BN'),
                 deploy: bool = False,
                 init_cfg: OptMultiConfig = None) -> None:
        super().__init__(init_cfg=init_cfg)
        norm = None if deploy else norm_cfg  # deploy: biased convs
        self.cv1 = ConvModule(
            in_channels, out_channels, 1, norm_cfg=norm, act_cfg=None)
        self.cv2 = ConvModule(
            out_channels,
            out_channels,
            kernel_size,
            stride, (kernel_size - 1) // 2,
            groups=out_channels,
            norm_cfg=norm,
            act_cfg=None)

    def forward(self, x: Tensor) -> Tensor:
        """(B, C_in, H, W) -> (B, C_out, ceil(H / s), ceil(W / s)) for odd
        kernels."""
        return self.cv2(self.cv1(x))

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold both BNs into their convs, in place (idempotent)."""
        _fuse_conv_modules(self)
