"""HGNetv2 backbone (PP-HGNetV2, the backbone of D-FINE) built on timm.

timm (``timm/models/hgnet.py``: ``HighPerfGpuNet``, registered as
``hgnetv2_b0`` .. ``hgnetv2_b6``) implements PP-HGNetV2 block for block as
PaddleClas and D-FINE (``src/nn/backbone/hgnetv2.py``) do, with the same
module names. This module builds timm's network, keeps its ``stem`` and
``stages`` under timm's names and drops the classifier head, so both
checkpoint layouts load without any key mapping:

* D-FINE's ``PPHGNetV2_B*_stage1.pth`` (a raw state dict, keys ``stem.*`` and
  ``stages.{0..3}.*``, no head), and a D-FINE detector checkpoint with
  ``prefix='backbone'`` (FrozenBatchNorm: no ``num_batches_tracked``);
* timm's checkpoints (the same keys plus ``head.*``, ignored).

timm's ``features_only`` mode is not used: it flattens the network into
``stages_0`` .. ``stages_3`` (a rename on every load) for nothing a pyramid
backbone needs; the four stages are simply run in turn.

How the network maps onto the pyramid::

    pyramid stage   stride   modules
    stem            4        stem (StemV2: two stride-2 convs)
    0               4        stages.0 (no down-sampling)
    1               8        stages.1 (3x3/2 depthwise conv + HG blocks)
    2               16       stages.2 (light HG blocks, 5x5 depthwise)
    3               32       stages.3 (light HG blocks, 5x5 depthwise)
"""
from typing import List, Optional, Sequence, Tuple, Union

import torch
from mmcv.cnn import build_norm_layer
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from timm.models.hgnet import (ConvBNAct, HighPerfGpuBlock, HighPerfGpuNet,
                               LearnableAffineBlock, LightConvBNAct)
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from ..layers.frozen_norm import BATCH_NORMS
from ..utils import (PyramidBackboneMixin, arch_table, check_frozen_stages,
                     fuse_bn_conv, fuse_conv_norm_in, normalize_out_indices,
                     resolve_arch)

# The fields of one stage, in the order of timm's and D-FINE's tables.
STAGE_FIELDS = ('in_channels', 'mid_channels', 'out_channels', 'num_blocks',
                'downsample', 'light_block', 'kernel_size', 'layer_num')


def _affine_as_norm(scale: torch.Tensor, shift: torch.Tensor) -> _BatchNorm:
    """An eval-mode BatchNorm computing ``x * scale + shift`` per channel.

    Zero mean, unit variance and ``eps=0`` make the running statistics an
    exact identity, so :func:`fuse_bn_conv` folds the affine map (e.g. a
    LearnableAffineBlock) into the 1x1 conv that reads it; no fusion math is
    written here.
    """
    norm = nn.BatchNorm2d(
        scale.numel(), eps=0., device=scale.device, dtype=scale.dtype).eval()
    norm.weight.copy_(scale)
    norm.bias.copy_(shift)
    return norm


def _lab_affine(lab: LearnableAffineBlock,
                channels: int) -> Tuple[torch.Tensor, torch.Tensor]:
    """The per-channel (scale, shift) of a LearnableAffineBlock (scalars)."""
    return lab.scale.expand(channels), lab.bias.expand(channels)


def _fold_lab_into(consumer: ConvBNAct, scale: torch.Tensor,
                   shift: torch.Tensor) -> None:
    """Fold ``x * scale + shift`` into the (fused) 1x1 conv of ``consumer``.

    Exact because that conv is unpadded and ungrouped (checked by
    :func:`fuse_bn_conv`).
    """
    consumer.conv = fuse_bn_conv(_affine_as_norm(scale, shift), consumer.conv)


def _has_lab(module: ConvBNAct) -> bool:
    return isinstance(module.lab, LearnableAffineBlock)


@MODELS.register_module()
class HGNetv2(PyramidBackboneMixin, BaseModule):
    """HGNetv2 (PP-HGNetV2 B0..B6) backbone returning pyramid stage features.

    The backbone of `D-FINE <https://arxiv.org/abs/2410.13842>`_ (N, S: B0;
    M: B2; L: B4; X: B5). Modules and weight initialisation are timm's
    (``timm.models.hgnet``). Stage ``i`` (0..3) is at stride ``4 * 2**i``.

    D-FINE's backbone settings map onto the arguments as follows::

        D-FINE (HGNetv2 in its yml)    this module
        name: 'B4'                     arch='b4'
        use_lab: true / false          use_lab (default: the arch's)
        return_idx: [1, 2, 3]          out_indices=(1, 2, 3)
        freeze_at: -1                  frozen_stages=-1
        freeze_at: 0 (stem only)       frozen_stages=0
        freeze_at: k, stem only false  frozen_stages=k + 1
        freeze_norm: true              norm_cfg=dict(
                                           type='FrozenBatchNorm2d')
        freeze_norm: false             norm_cfg=dict(type='BN'),
                                       norm_eval=False
        pretrained: true               init_cfg=dict(type='Pretrained',
                                           checkpoint='PPHGNetV2_B4_stage1.pth')

    So D-FINE N/S/M (everything trainable) are the defaults, and D-FINE L/X
    (stem frozen, every BatchNorm frozen: running statistics in training and
    no trainable affine) are ``frozen_stages=0,
    norm_cfg=dict(type='FrozenBatchNorm2d')`` (torchvision's, the official
    arithmetic; ``dict(type='BN', requires_grad=False), norm_eval=True``
    trains the same but rounds differently in float32). D-FINE freezes only
    parameters of the stages ``freeze_at`` names; here a frozen stage's
    BatchNorms also stay in eval mode (the same with ``freeze_norm``).

    Args:
        arch (str | dict): ``'b0'`` .. ``'b6'`` or a dict with the fields of
            :attr:`arch_settings`: ``stem_channels`` (mid, out),
            ``stages`` (4 rows of :data:`STAGE_FIELDS`: in, mid and out
            channels, blocks, downsample, light block, kernel size, layers
            per block) and ``use_lab`` (bool). Default: ``'b0'``.
        use_lab (bool, optional): Put a LearnableAffineBlock (scalar scale
            and bias) after every activation. None takes the arch's value:
            True for b0..b3, False for b4..b6 (timm's and D-FINE's).
            Default: None.
        in_channels (int): Channels of the input image. Default: 3.
        out_indices (Sequence[int]): Pyramid stages to return (0..3,
            negatives count from the end), in this order. Default: (1, 2, 3).
        frozen_stages (int): -1 freezes nothing, 0 the stem, k the stem and
            ``stages.0`` .. ``stages.{k-1}``. Frozen parts get
            ``requires_grad=False`` and stay in eval mode. Default: -1.
        norm_cfg (dict): Every norm layer (one per conv): a BatchNorm type
            (``'BN'``, ``'SyncBN'``) with mmcv's options; ``requires_grad=
            False`` freezes all their affine parameters. Default:
            ``dict(type='BN', requires_grad=True)``.
        norm_eval (bool): Keep every BatchNorm in eval mode while training.
            Default: False.
        drop_path_rate (float): Stochastic depth rate (timm's stage-wise
            schedule over the residual HG blocks). D-FINE uses none.
            Default: 0.
        deploy (bool): Build the inference form directly (see
            :meth:`switch_to_deploy`), e.g. to load a checkpoint saved after
            the switch. Default: False.
        init_cfg (dict, optional): ``dict(type='Pretrained', checkpoint=...,
            prefix=...)`` loads D-FINE's ``PPHGNetV2_B*_stage1.pth``, a timm
            checkpoint (``head.*`` is ignored) or a D-FINE detector
            checkpoint with ``prefix='backbone'``. Default: None.

    Example:
        >>> import torch
        >>> from rtdetr_mm.models.backbones.hgnetv2 import HGNetv2
        >>> model = HGNetv2(arch='b0').eval()
        >>> model.out_channels
        (256, 512, 1024)
        >>> outs = model(torch.rand(1, 3, 64, 96))
        >>> [tuple(out.shape) for out in outs]
        [(1, 256, 8, 12), (1, 512, 4, 6), (1, 1024, 2, 3)]
    """
    # timm's model_cfgs['hgnetv2_b*'] (= D-FINE's arch_configs): stem
    # (mid, out) channels; per stage: in, mid, out channels, blocks,
    # downsample, light block, kernel size, layers per block.
    arch_settings = arch_table(
        ('stem_channels', 'stages', 'use_lab'), {
            'b0': ((16, 16), (
                (16, 16, 64, 1, False, False, 3, 3),
                (64, 32, 256, 1, True, False, 3, 3),
                (256, 64, 512, 2, True, True, 5, 3),
                (512, 128, 1024, 1, True, True, 5, 3),
            ), True),
            'b1': ((24, 32), (
                (32, 32, 64, 1, False, False, 3, 3),
                (64, 48, 256, 1, True, False, 3, 3),
                (256, 96, 512, 2, True, True, 5, 3),
                (512, 192, 1024, 1, True, True, 5, 3),
            ), True),
            'b2': ((24, 32), (
                (32, 32, 96, 1, False, False, 3, 4),
                (96, 64, 384, 1, True, False, 3, 4),
                (384, 128, 768, 3, True, True, 5, 4),
                (768, 256, 1536, 1, True, True, 5, 4),
            ), True),
            'b3': ((24, 32), (
                (32, 32, 128, 1, False, False, 3, 5),
                (128, 64, 512, 1, True, False, 3, 5),
                (512, 128, 1024, 3, True, True, 5, 5),
                (1024, 256, 2048, 1, True, True, 5, 5),
            ), True),
            'b4': ((32, 48), (
                (48, 48, 128, 1, False, False, 3, 6),
                (128, 96, 512, 1, True, False, 3, 6),
                (512, 192, 1024, 3, True, True, 5, 6),
                (1024, 384, 2048, 1, True, True, 5, 6),
            ), False),
            'b5': ((32, 64), (
                (64, 64, 128, 1, False, False, 3, 6),
                (128, 128, 512, 2, True, False, 3, 6),
                (512, 256, 1024, 5, True, True, 5, 6),
                (1024, 512, 2048, 2, True, True, 5, 6),
            ), False),
            'b6': ((48, 96), (
                (96, 96, 192, 2, False, False, 3, 6),
                (192, 192, 512, 3, True, False, 3, 6),
                (512, 384, 1024, 6, True, True, 5, 6),
                (1024, 768, 2048, 3, True, True, 5, 6),
            ), False),
        })
    # timm's classifier (D-FINE's stage1 files have none).
    ignored_checkpoint_keys = r'^head\.'

    def __init__(self,
                 arch: Union[str, dict] = 'b0',
                 use_lab: Optional[bool] = None,
                 in_channels: int = 3,
                 out_indices: Sequence[int] = (1, 2, 3),
                 frozen_stages: int = -1,
                 norm_cfg: dict = dict(type='BN', requires_grad=True),
                 norm_eval: bool = False,
                 drop_path_rate: float = 0.,
                 deploy: bool = False,
                 init_cfg: Optional[dict] = None) -> None:
        super().__init__(init_cfg=init_cfg)
        family = type(self).__name__
        settings = resolve_arch(arch, self.arch_settings, family)
        stem_channels, stages = self._check_arch(settings)
        if use_lab is None:
            use_lab = settings['use_lab']
        if not isinstance(use_lab, bool):
            raise ValueError(f'{family}: use_lab must be None (the arch\'s '
                             f'default) or a bool, got {use_lab!r}')
        if not 0 <= drop_path_rate < 1:
            raise ValueError(f'{family}: drop_path_rate={drop_path_rate!r} '
                             'must be in [0, 1)')
        self.out_indices = normalize_out_indices(out_indices, family)
        self.frozen_stages = check_frozen_stages(frozen_stages, family)
        self.norm_eval = norm_eval
        self.use_lab = use_lab
        self.out_channels = tuple(stages[i][2] for i in self.out_indices)

        # timm's HighPerfGpuNet, as timm.create_model('hgnetv2_bX') builds
        # it, but from our table: timm's hgnetv2_b0..b3 pass use_lab=True
        # themselves (no override) and a custom arch has no timm name. Only
        # the stem and the stages are kept (no classifier head).
        network = HighPerfGpuNet(
            dict(
                stem_type='v2',
                stem_chs=list(stem_channels),
                **{
                    f'stage{i + 1}': list(row)
                    for i, row in enumerate(stages)
                }),
            in_chans=in_channels,
            num_classes=0,
            head_hidden_size=None,
            drop_path_rate=drop_path_rate,
            use_lab=use_lab)
        self.stem = network.stem
        self.stages = network.stages
        self._build_norms(norm_cfg)

        self.deploy = False
        if deploy:
            self.switch_to_deploy()
        self._freeze_stages()

    def _check_arch(self, settings: dict) -> Tuple[tuple, tuple]:
        """Validate an arch's fields; return (stem_channels, stages)."""
        family = type(self).__name__
        stem_channels = tuple(settings['stem_channels'])
        stages = tuple(tuple(row) for row in settings['stages'])
        if len(stem_channels) != 2:
            raise ValueError(f'{family}: arch stem_channels must be (mid, '
                             f'out) channels, got {stem_channels!r}')
        if len(stages) != 4 or any(
                len(row) != len(STAGE_FIELDS) for row in stages):
            raise ValueError(
                f'{family}: arch stages must be 4 rows (one per pyramid '
                f'stage) of {len(STAGE_FIELDS)} values {STAGE_FIELDS}, got '
                f'{stages!r}')
        for i, row in enumerate(stages):
            counts = row[:4] + row[6:]
            if not all(isinstance(n, int) and n > 0 for n in counts):
                raise ValueError(
                    f'{family}: arch stage {i} {row!r}: channels, blocks, '
                    'kernel size and layers must be positive ints')
        if tuple(row[4] for row in stages) != (False, True, True, True):
            raise ValueError(
                f'{family}: arch stages must down-sample as (False, True, '
                'True, True) (pyramid strides 4/8/16/32), got '
                f'{tuple(row[4] for row in stages)!r}')
        expected_in = (stem_channels[1], ) + tuple(row[2] for row in stages)
        for i, row in enumerate(stages):
            if row[0] != expected_in[i]:
                raise ValueError(
                    f'{family}: arch stage {i} has in_channels={row[0]}, but '
                    f'the {"stem" if i == 0 else f"stage {i - 1}"} gives '
                    f'{expected_in[i]} channels')
        return stem_channels, stages

    def _build_norms(self, norm_cfg: dict) -> None:
        """Replace timm's BatchNorm2d of every conv by one from ``norm_cfg``.

        timm hard-codes ``nn.BatchNorm2d``; mmcv's ``build_norm_layer`` gives
        SyncBN, ``requires_grad=False`` and ``FrozenBatchNorm2d``
        (torchvision's, D-FINE's arithmetic). Only BatchNorm types: the
        deploy form folds them.
        """
        family = type(self).__name__
        if not isinstance(norm_cfg, dict) or 'type' not in norm_cfg:
            raise ValueError(f'{family}: norm_cfg must be a dict with a type, '
                             f'e.g. dict(type=\'BN\'), got {norm_cfg!r}')
        for module in self.modules():
            if isinstance(module, ConvBNAct):
                norm = build_norm_layer(norm_cfg, module.bn.num_features)[1]
                if not isinstance(norm, BATCH_NORMS):
                    raise ValueError(
                        f'{family}: norm_cfg={norm_cfg!r} builds a '
                        f'{type(norm).__name__}; only BatchNorm types '
                        '(\'BN\', \'SyncBN\', \'FrozenBatchNorm2d\') are '
                        'supported, as the deploy form folds every norm into '
                        'its conv')
                module.bn = norm.to(module.conv.weight.device)

    def stage_modules(self) -> List[nn.Module]:
        """``[stem, stages.0, stages.1, stages.2, stages.3]``."""
        return [self.stem, *self.stages]

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Convert, in place, to the inference form (idempotent).

        Every conv + BatchNorm pair (``ConvBNAct``) is fused. A
        LearnableAffineBlock follows a ReLU, so it cannot fold into the conv
        before it; it folds into the convs that read it where all of them
        are unpadded 1x1 convs (exact):

        * the stem's ``stem3.lab`` into ``stem4``;
        * every HG block's squeeze ``aggregation.0.lab`` into the
          excitation ``aggregation.1``;
        * every HG block's last layer (``layers.{n-1}.lab``, or
          ``layers.{n-1}.conv2.lab`` in light blocks) into its channels of
          the squeeze conv, which reads the concatenation;
        * in light blocks, every ``layers.i.conv2.lab`` also into the next
          layer's 1x1 ``conv1`` (and the squeeze conv).

        The others (before zero padding, max pooling, a padded conv, the
        residual sum or a stage output) stay. In eval mode the outputs are
        unchanged up to float rounding.
        """
        if self.deploy:
            return
        for module in list(self.modules()):
            if isinstance(module, ConvBNAct) and isinstance(
                    module.bn, BATCH_NORMS):
                fuse_conv_norm_in(module, 'conv', 'bn')
        stem = self.stem
        if _has_lab(stem.stem3):
            _fold_lab_into(
                stem.stem4,
                *_lab_affine(stem.stem3.lab, stem.stem3.conv.out_channels))
            stem.stem3.lab = nn.Identity()
        for block in list(self.modules()):
            if isinstance(block, HighPerfGpuBlock):
                self._fold_block_labs(block)
        self.deploy = True
        self._freeze_stages()

    @staticmethod
    def _fold_block_labs(block: HighPerfGpuBlock) -> None:
        """Fold the LearnableAffineBlocks of one HG block that are exact.

        The squeeze conv reads ``cat([block input, layer 0, ..., layer
        n-1])``; layer ``i < n-1`` is also read by layer ``i+1``'s first
        conv: a 1x1 ``conv1`` in light blocks, a padded kxk conv otherwise.
        """
        squeeze, excite = block.aggregation[0], block.aggregation[1]
        if _has_lab(squeeze):
            _fold_lab_into(
                excite, *_lab_affine(squeeze.lab, squeeze.conv.out_channels))
            squeeze.lab = nn.Identity()
        layers = list(block.layers)
        light = isinstance(layers[0], LightConvBNAct)
        outputs = [layer.conv2 if light else layer for layer in layers]
        in_channels = squeeze.conv.in_channels - sum(out.conv.out_channels
                                                     for out in outputs)
        # per channel of the concatenation (B, in + n * mid, H, W)
        scales = [squeeze.conv.weight.new_ones(in_channels)]
        shifts = [squeeze.conv.weight.new_zeros(in_channels)]
        if not _has_lab(outputs[-1]):  # use_lab=False: nothing to fold
            return
        for i, out in enumerate(outputs):
            channels = out.conv.out_channels
            last = i + 1 == len(outputs)
            if _has_lab(out) and (light or last):
                scale, shift = _lab_affine(out.lab, channels)
                if not last:
                    _fold_lab_into(layers[i + 1].conv1, scale, shift)
                out.lab = nn.Identity()
            else:
                scale = squeeze.conv.weight.new_ones(channels)
                shift = squeeze.conv.weight.new_zeros(channels)
            scales.append(scale)
            shifts.append(shift)
        _fold_lab_into(squeeze, torch.cat(scales), torch.cat(shifts))

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, ...]:
        """Return the maps of ``out_indices``, in that order.

        Args:
            x (Tensor): Images, shape (B, in_channels, H, W).

        Returns:
            tuple[Tensor]: For stage ``i``: (B, out_channels of stage i,
            ceil(H / 2**(i+2)), ceil(W / 2**(i+2))).
        """
        x = self.stem(x)  # (B, 3, H, W) -> (B, C_stem, H/4, W/4)
        outs = {}
        for i in range(max(self.out_indices) + 1):
            x = self.stages[i](x)  # -> (B, C_i, H / 2**(i+2), W / 2**(i+2))
            if i in self.out_indices:
                outs[i] = x
        return tuple(outs[i] for i in self.out_indices)
