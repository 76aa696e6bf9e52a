"""RevCol: Reversible Column Networks (Cai et al., ICLR 2023) as a backbone.

The module and parameter names follow the official code
(megvii-research/RevCol ``models/revcol.py``) so its released checkpoints
load as they are: ``stem.{0,1}``, ``subnet{i}.alpha{k}``,
``subnet{i}.level{k}.fusion.{down,up.channel_reschedule}``,
``subnet{i}.level{k}.blocks.{j}.{dwconv,norm,pwconv1,pwconv2,gamma}``.

The reversible training path lives in :mod:`.revcol_function`.
"""
import re
from typing import List, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from mmcv.cnn.bricks import DropPath
from mmdet.registry import MODELS
from mmengine.model import BaseModule
from torch import Tensor, nn

from ..utils import (PyramidBackboneMixin, arch_table, check_frozen_stages,
                     normalize_out_indices, resolve_arch, scale_linear,
                     switch_submodules_to_deploy)
from .revcol_function import NUM_LEVELS, reversible_column, run_column


class LayerNorm2d(nn.LayerNorm):
    """LayerNorm over the channels of a (B, C, H, W) map."""

    def forward(self, x: Tensor) -> Tensor:
        x = x.permute(0, 2, 3, 1)  # (B, C, H, W) -> (B, H, W, C)
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias,
                         self.eps)
        return x.permute(0, 3, 1, 2)  # -> (B, C, H, W)


class ConvNeXtBlock(nn.Module):
    """ConvNeXt block: dw 3x3, LN, Linear x4, GELU, Linear, layer scale.

    Args:
        channels: input = output channels.
        drop_path: stochastic depth rate of the residual branch.
        layer_scale_init: initial value of the per-channel ``gamma``.
        deploy: build the inference form, where ``gamma`` is folded into
            ``pwconv2`` (see :meth:`switch_to_deploy`).
    """

    def __init__(self,
                 channels: int,
                 drop_path: float = 0.,
                 layer_scale_init: float = 1e-6,
                 deploy: bool = False):
        super().__init__()
        self.dwconv = nn.Conv2d(
            channels, channels, 3, padding=1, groups=channels)
        self.norm = nn.LayerNorm(channels, eps=1e-6)
        self.pwconv1 = nn.Linear(channels, 4 * channels)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * channels, channels)
        self.gamma = None if deploy else nn.Parameter(
            torch.full((channels, ), layer_scale_init))
        self.drop_path = DropPath(drop_path) if drop_path > 0 \
            else nn.Identity()

    def forward(self, x: Tensor) -> Tensor:
        y = self.dwconv(x).permute(0, 2, 3, 1)  # -> (B, H, W, C)
        y = self.pwconv2(self.act(self.pwconv1(self.norm(y))))
        if self.gamma is not None:
            y = self.gamma * y
        return x + self.drop_path(y.permute(0, 3, 1, 2))  # -> (B, C, H, W)

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold ``gamma`` into ``pwconv2`` (one multiply less per block)."""
        if self.gamma is None:
            return
        linear = self.pwconv2
        linear.weight[:], linear.bias[:] = scale_linear(
            linear.weight, linear.bias, self.gamma)
        self.gamma = None


class UpBranch(nn.Module):
    """Level k+1 of the previous column -> level k: Linear, LN, nearest up.

    The official code upsamples by a fixed factor 2, which needs inputs
    divisible by 32; resizing to the down branch's size is the same
    operation there and also serves any other input size.
    """

    def __init__(self, in_channels: int, out_channels: int):
        super().__init__()
        self.channel_reschedule = nn.Sequential(
            nn.Linear(in_channels, out_channels),
            nn.LayerNorm(out_channels, eps=1e-6))

    def forward(self, x: Tensor, size: Sequence[int]) -> Tensor:
        x = self.channel_reschedule(x.permute(0, 2, 3, 1))  # (B, h, w, C)
        return F.interpolate(x.permute(0, 3, 1, 2), size=size, mode='nearest')


class Fusion(nn.Module):
    """Input of level k: down (Conv 2x2 s2 + LN) from level k-1 of this
    column plus, in all but the first column and for k < 3, the up branch
    from level k+1 of the previous column."""

    def __init__(self, level: int, channels: Sequence[int],
                 first_column: bool):
        super().__init__()
        self.down = nn.Identity() if level == 0 else nn.Sequential(
            nn.Conv2d(channels[level - 1], channels[level], 2, stride=2),
            LayerNorm2d(channels[level], eps=1e-6))
        if not first_column and level < NUM_LEVELS - 1:
            self.up = UpBranch(channels[level + 1], channels[level])

    def forward(self, down: Tensor, up: Optional[Tensor]) -> Tensor:
        x = self.down(down)
        if up is not None:
            x = x + self.up(up, x.shape[-2:])
        return x


class Level(nn.Module):
    """``F_k(down, up)``: :class:`Fusion` followed by ConvNeXt blocks."""

    def __init__(self,
                 level: int,
                 channels: Sequence[int],
                 first_column: bool,
                 drop_path_rates: Sequence[float],
                 deploy: bool = False):
        super().__init__()
        self.fusion = Fusion(level, channels, first_column)
        self.blocks = nn.Sequential(*[
            ConvNeXtBlock(channels[level], rate, deploy=deploy)
            for rate in drop_path_rates
        ])

    def forward(self, down: Tensor, up: Optional[Tensor]) -> Tensor:
        return self.blocks(self.fusion(down, up))


class RevColColumn(nn.Module):
    """One column ("subnet"): ``c_k <- alpha_k * c_k + level_k(c_{k-1},
    c_{k+1})`` for k = 0..3, with ``|alpha_k| >= 1e-3`` enforced in
    training so that the reversible path can divide by it.

    The first column starts from zero, so its alphas have no effect; they
    exist for checkpoint compatibility and do not require gradients.
    """
    min_alpha = 1e-3

    def __init__(self,
                 channels: Sequence[int],
                 depths: Sequence[int],
                 first_column: bool,
                 drop_path_rates: Sequence[float],
                 deploy: bool = False):
        super().__init__()
        for k in range(NUM_LEVELS):
            start = sum(depths[:k])
            self.register_parameter(
                f'alpha{k}',
                nn.Parameter(
                    torch.full((1, channels[k], 1, 1), 0.5),
                    requires_grad=not first_column))
            self.add_module(
                f'level{k}',
                Level(k, channels, first_column,
                      drop_path_rates[start:start + depths[k]], deploy))

    @property
    def levels(self) -> List[Level]:
        return [getattr(self, f'level{k}') for k in range(NUM_LEVELS)]

    @property
    def alphas(self) -> List[nn.Parameter]:
        return [getattr(self, f'alpha{k}') for k in range(NUM_LEVELS)]

    @torch.no_grad()
    def _clamp_alphas(self) -> None:
        # In place on .data, as the official code: no autograd version bump.
        for alpha in self.alphas:
            alpha.data.copy_(
                torch.where(alpha < 0, alpha.clamp(max=-self.min_alpha),
                            alpha.clamp(min=self.min_alpha)))

    def forward(self, x: Tensor, previous: Optional[Sequence[Tensor]],
                reversible: bool) -> Tuple[Tensor, ...]:
        """(B, C0, H/4, W/4) stem output and the previous column's four maps
        (None for the first column) -> this column's four maps."""
        if self.training:
            self._clamp_alphas()
        column = reversible_column if reversible else run_column
        return column(self.levels, self.alphas, x, previous)


@MODELS.register_module()
class RevCol(PyramidBackboneMixin, BaseModule):
    """Reversible Column Network backbone.

    A 4x4 stride-4 stem feeds N identical columns of four levels (strides
    4, 8, 16, 32); the outputs are the last column's levels. With
    ``save_memory`` the columns run through a reversible autograd function
    (:mod:`.revcol_function`) that keeps only each column's four outputs and
    recomputes the rest in backward, so training memory barely grows with
    the number of columns. Under DDP use ``find_unused_parameters=False``.

    No output norms are added: every returned map is already the sum of a
    LayerNorm-ed fusion and ConvNeXt residuals, the official detection
    integration feeds the columns' maps to the neck as they are, and the
    RT-DETR HybridEncoder normalises each input with its conv + BN input
    projection. Extra norms would also be parameters that no released
    checkpoint holds.

    Args:
        arch: ``'tiny'``, ``'small'``, ``'base'``, ``'large'``,
            ``'xlarge'`` or a dict with ``channels`` (4 ints), ``layers``
            (blocks per level, 4 ints), ``num_columns`` and
            ``drop_path_rate``.
        out_indices: levels of the last column to return (0..3 at strides
            4/8/16/32, negatives count from the end). Default (1, 2, 3).
        frozen_stages: -1 freezes nothing, 0 the stem, k the stem and
            levels 0..k-1 (with their alphas) of every column.
        norm_eval: accepted for the backbone contract; RevCol has only
            LayerNorms, which have no running statistics, so it changes
            nothing.
        drop_path_rate: stochastic depth, increasing linearly over the
            blocks of a column (the same in every column). None takes the
            arch's published rate.
        save_memory: train through the reversible autograd function (used
            in training mode with gradients enabled). False runs the plain
            path.
        deploy: build the inference form (layer scales folded into
            ``pwconv2``), so checkpoints saved after :meth:`switch_to_deploy`
            load.
        init_cfg: ``dict(type='Pretrained', checkpoint=...)`` loads an
            official release (``revcol_*_1k.pth``, ``revcol_*_22k*.pth``);
            the classifier extras ``cls``, ``cls_blocks``, ``decoder_blocks``
            are dropped. Default: truncated-normal (std 0.02) Conv/Linear
            weights, as the official code.

    Inputs must be at least 32x32. Sizes divisible by 32 give maps of
    exactly H/4..H/32; other sizes work too (the up branch resizes to the
    down branch's size).

    Example:
        >>> import torch
        >>> from rtdetr_mm.models.backbones.revcol import RevCol
        >>> model = RevCol(arch='tiny').eval()
        >>> outs = model(torch.rand(1, 3, 64, 64))
        >>> [tuple(o.shape) for o in outs]
        [(1, 128, 8, 8), (1, 256, 4, 4), (1, 512, 2, 2)]
        >>> model.out_channels
        (128, 256, 512)
    """
    arch_settings = arch_table(
        ('channels', 'layers', 'num_columns', 'drop_path_rate'), {
            'tiny': ([64, 128, 256, 512], [2, 2, 4, 2], 4, 0.1),
            'small': ([64, 128, 256, 512], [2, 2, 4, 2], 8, 0.3),
            'base': ([72, 144, 288, 576], [1, 1, 3, 2], 16, 0.4),
            'large': ([128, 256, 512, 1024], [1, 2, 6, 2], 8, 0.5),
            'xlarge': ([224, 448, 896, 1792], [1, 2, 6, 2], 8, 0.5),
        })
    ignored_checkpoint_keys = r'^(cls_blocks|decoder_blocks|cls|head)\b'
    min_input_size = 32

    def __init__(self,
                 arch: Union[str, dict] = 'tiny',
                 out_indices: Sequence[int] = (1, 2, 3),
                 frozen_stages: int = -1,
                 norm_eval: bool = False,
                 drop_path_rate: Optional[float] = None,
                 save_memory: bool = True,
                 deploy: bool = False,
                 init_cfg: Optional[Union[dict, List[dict]]] = dict(
                     type='TruncNormal',
                     layer=['Conv2d', 'Linear'],
                     std=.02,
                     bias=0.)):
        super().__init__(init_cfg=init_cfg)
        settings = resolve_arch(arch, self.arch_settings, 'RevCol')
        channels, layers = settings['channels'], settings['layers']
        num_columns = settings['num_columns']
        if len(channels) != NUM_LEVELS or len(layers) != NUM_LEVELS or \
                min(layers) < 1:
            raise ValueError(
                f'RevCol: arch needs {NUM_LEVELS} channels and {NUM_LEVELS} '
                f'layers (blocks per level, each >= 1), got '
                f'channels={channels}, layers={layers}')
        if not isinstance(num_columns, int) or num_columns < 1:
            raise ValueError('RevCol: arch num_columns must be a positive '
                             f'int, got {num_columns!r}')
        self.out_indices = normalize_out_indices(out_indices, 'RevCol')
        self.frozen_stages = check_frozen_stages(frozen_stages, 'RevCol')
        self.norm_eval = norm_eval
        self.save_memory = save_memory
        self.deploy = deploy
        self.channels = tuple(channels)
        self.num_columns = num_columns
        self.out_channels = tuple(channels[i] for i in self.out_indices)
        if drop_path_rate is None:
            drop_path_rate = settings['drop_path_rate']

        self.stem = nn.Sequential(
            nn.Conv2d(3, channels[0], kernel_size=4, stride=4),
            LayerNorm2d(channels[0], eps=1e-6))
        num_blocks = sum(layers)  # rates 0 .. drop_path_rate, per block
        rates = [
            drop_path_rate * j / max(num_blocks - 1, 1)
            for j in range(num_blocks)
        ]
        for i in range(num_columns):
            self.add_module(
                f'subnet{i}',
                RevColColumn(channels, layers, i == 0, rates, deploy))
        self._freeze_stages()

    @property
    def columns(self) -> List[RevColColumn]:
        return [getattr(self, f'subnet{i}') for i in range(self.num_columns)]

    def stage_modules(self) -> List[list]:
        """``[stem, level 0 of every column (+ its alphas), ..., level 3]``."""
        return [self.stem] + [[column.levels[k] for column in self.columns] +
                              [column.alphas[k] for column in self.columns]
                              for k in range(NUM_LEVELS)]

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        """(B, 3, H, W) -> the last column's levels in ``out_indices``,
        each (B, channels[i], H / 2**(i+2), W / 2**(i+2))."""
        if min(x.shape[-2:]) < self.min_input_size:
            raise ValueError(
                f'RevCol: input {tuple(x.shape[-2:])} is too small; H and W '
                f'must be >= {self.min_input_size} (4 levels down to stride '
                '32). Pad the input (the data preprocessor pads to /32).')
        x = self.stem(x)  # (B, C0, H/4, W/4)
        # the reversible function only when training: in eval mode (also with
        # grad enabled, as in tracing/export) the plain path runs
        reversible = (
            self.save_memory and self.training and torch.is_grad_enabled())
        maps = None
        for column in self.columns:
            maps = column(x, maps, reversible)
        return tuple(maps[i] for i in self.out_indices)

    def switch_to_deploy(self) -> None:
        """Fold every block's layer scale into its ``pwconv2`` (in place,
        idempotent). Outputs stay equal to float rounding."""
        switch_submodules_to_deploy(self)
        self.deploy = True

    @torch.no_grad()
    def convert_checkpoint(self, state_dict: dict) -> dict:
        """Official keys are ours; a deploy-form model folds ``gamma``."""
        if not self.deploy:
            return state_dict
        state_dict = dict(state_dict)
        for key in [k for k in state_dict if re.search(r'\.gamma$', k)]:
            linear = key[:-len('gamma')] + 'pwconv2.'
            state_dict[f'{linear}weight'], state_dict[f'{linear}bias'] = \
                scale_linear(state_dict[f'{linear}weight'],
                             state_dict[f'{linear}bias'], state_dict.pop(key))
        return state_dict
