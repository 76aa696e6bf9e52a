"""ResNet-vd exactly as RT-DETR's ``PResNet`` (for its R18/R34 variants)."""
from mmcv.cnn import build_conv_layer, build_norm_layer
from torch import nn

from mmdet.models.backbones import ResNetV1d
from mmdet.registry import MODELS


@MODELS.register_module()
class PResNetV1d(ResNetV1d):
    """mmdet's :class:`ResNetV1d` with a projection shortcut in *every*
    stage's first block, as RT-DETR's ``PResNet`` (variant ``d``) has.

    mmdet's ResNet adds a shortcut conv only when the stride or the width
    changes. For ResNet-50/101 that is every first block, so mmdet's
    ``ResNetV1d`` already equals PResNet-50/101-vd. For ResNet-18/34 the
    first block of stage 1 keeps 64 channels at stride 1 and mmdet uses an
    identity, while PResNet uses a 1x1 conv + BN: this class adds it, laid
    out like mmdet's stride-1 ``avg_down`` shortcut (``downsample.1`` conv,
    ``downsample.2`` norm), so the official R18/R34 weights load.

    Arguments are those of :class:`ResNetV1d` (``depth`` 18/34/50/101...).

    Example:
        >>> import torch
        >>> m = PResNetV1d(depth=18, out_indices=(1, 2, 3))
        >>> m.eval()
        >>> [tuple(o.shape) for o in m(torch.rand(1, 3, 64, 64))]
        [(1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
    """

    def make_res_layer(self, **kwargs) -> nn.Module:
        """Build a stage; give its first block a projection shortcut."""
        layer = super().make_res_layer(**kwargs)
        first = layer[0]
        if first.downsample is None:
            channels = kwargs['planes'] * kwargs['block'].expansion
            first.downsample = nn.Sequential(
                nn.Identity(),  # the (stride-1) pooling slot of avg_down
                build_conv_layer(
                    self.conv_cfg,
                    kwargs['inplanes'],
                    channels,
                    kernel_size=1,
                    bias=False),
                build_norm_layer(self.norm_cfg, channels)[1])
        return layer
