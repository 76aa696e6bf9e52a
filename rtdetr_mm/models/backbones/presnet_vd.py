"""ResNet-vd exactly as RT-DETR's ``PResNet``, loading its official weights."""
from typing import Dict, List

from mmcv.cnn import build_conv_layer, build_norm_layer
from torch import Tensor, nn

from mmdet.models.backbones import ResNetV1d
from mmdet.registry import MODELS
from ..utils import PyramidBackboneMixin, check_frozen_stages
from ..utils.rtdetr_official_keys import (describe_layout,
                                          official_backbone_to_mm)

# The ImageNet weights the official RT-DETR recipes start from (converted
# from Paddle by the RT-DETR authors), by depth.
OFFICIAL_IMAGENET_WEIGHTS = {
    depth: 'https://github.com/lyuwenyu/storage/releases/download/v0.1/'
    f'ResNet{depth}_vd_{tag}pretrained_from_paddle.pth'
    for depth, tag in ((18, ''), (34, ''), (50, 'ssld_v2_'), (101, 'ssld_'))
}


@MODELS.register_module()
class PResNetV1d(PyramidBackboneMixin, ResNetV1d):
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
    ``init_cfg=dict(type='Pretrained', checkpoint=...)`` loads, strictly and
    safely, an mmdet-layout file or the official ImageNet PResNet-vd weights
    (``OFFICIAL_IMAGENET_WEIGHTS``, converted on load).

    Example:
        >>> import torch
        >>> m = PResNetV1d(depth=18, out_indices=(1, 2, 3))
        >>> m.eval()
        >>> [tuple(o.shape) for o in m(torch.rand(1, 3, 64, 64))]
        [(1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
    """

    def __init__(self, frozen_stages: int = -1, **kwargs) -> None:
        check_frozen_stages(frozen_stages, 'PResNetV1d')
        super().__init__(frozen_stages=frozen_stages, **kwargs)

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

    def stage_modules(self) -> List[nn.Module]:
        """The deep stem, then the four residual stages."""
        return [self.stem] + [getattr(self, name) for name in self.res_layers]

    def convert_checkpoint(self, state_dict: Dict[str, Tensor]
                           ) -> Dict[str, Tensor]:
        """Official PResNet keys (``conv1.conv1_1.*``, ``res_layers.*``) ->
        ours; mmdet-layout checkpoints pass unchanged."""
        if describe_layout(state_dict) == 'official ImageNet PResNet backbone':
            return official_backbone_to_mm(state_dict)
        return state_dict
