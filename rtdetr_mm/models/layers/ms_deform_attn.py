"""Multi-scale deformable attention that runs wherever PyTorch runs.

mmcv's ``MultiScaleDeformableAttention`` calls its compiled CUDA kernel for
every CUDA tensor, so on a GPU machine whose mmcv was built without CUDA ops
(no ``nvcc`` at install time, as ``tools/setup.sh`` then does) it fails. The
official RT-DETR samples with ``grid_sample`` in plain PyTorch. This subclass
keeps mmcv's parameters, initialisation and key names (official checkpoints
convert unchanged) and picks the kernel per call: mmcv's compiled op where it
exists for the tensor's device, mmcv's PyTorch path otherwise.
:class:`DFINEDeformableAttention`, D-FINE's variant (points per level, no
projections), runs on the same two paths.
"""
import math
from functools import lru_cache, reduce
from typing import Sequence, Union

import torch
from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch)
from mmdet.utils import OptConfigType
from mmengine.model import BaseModule
from torch import Tensor, nn


@lru_cache(maxsize=None)
def mmcv_has_cuda_ops() -> bool:
    """Whether the installed mmcv was compiled with its CUDA kernels."""
    from mmcv.ops import get_compiling_cuda_version
    return get_compiling_cuda_version() not in ('not available', '')


def use_compiled_kernel(value: Tensor) -> bool:
    """mmcv's CUDA kernel for CUDA tensors when mmcv has it, else PyTorch."""
    return value.is_cuda and mmcv_has_cuda_ops()


class BoxDeformableAttention(MultiScaleDeformableAttention):
    """mmcv's deformable attention for box references, batch first.

    Sampling points are offsets scaled by half the reference box (RT-DETR,
    DINO); the input is batch first. Shapes: ``query`` (B, Nq, C), ``value``
    (B, sum(H*W), C), ``reference_points`` (B, Nq, L, 4) as (cx, cy, w, h)
    in [0, 1], ``spatial_shapes`` (L, 2) as (H, W). Returns (B, Nq, C).
    """

    def forward(self,
                query: Tensor,
                value: Tensor,
                reference_points: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                query_pos: Tensor = None,
                key_padding_mask: Tensor = None,
                **kwargs) -> Tensor:
        identity = query
        if query_pos is not None:
            query = query + query_pos
        bs, num_query, _ = query.shape
        num_value = value.shape[1]
        value = self.value_proj(value)
        if key_padding_mask is not None:
            value = value.masked_fill(key_padding_mask[..., None], 0.0)
        value = value.view(bs, num_value, self.num_heads, -1)
        offsets = self.sampling_offsets(query).view(bs, num_query,
                                                    self.num_heads,
                                                    self.num_levels,
                                                    self.num_points, 2)
        weights = self.attention_weights(query).view(
            bs, num_query, self.num_heads, self.num_levels * self.num_points)
        weights = weights.softmax(-1).view(bs, num_query, self.num_heads,
                                           self.num_levels, self.num_points)
        # (B, Nq, L, 4) -> (B, Nq, heads, L, points, 2)
        boxes = reference_points[:, :, None, :, None]
        locations = boxes[..., :2] + offsets / self.num_points * \
            boxes[..., 2:] * 0.5
        if use_compiled_kernel(value):
            output = MultiScaleDeformableAttnFunction.apply(
                value, spatial_shapes, level_start_index, locations, weights,
                self.im2col_step)
        else:
            output = multi_scale_deformable_attn_pytorch(
                value, spatial_shapes, locations, weights)
        return self.dropout(self.output_proj(output)) + identity


class DFINEDeformableAttention(BaseModule):
    """D-FINE's deformable cross-attention: box references, a number of
    sampling points per level, no value or output projection.

    For each head, ``num_points[l]`` points are sampled on level ``l`` at
    ``centre + offset / num_points[l] * offset_scale * (w, h)`` of the
    reference box, and their features are averaged with weights from one
    softmax over the points of all levels.

    mmcv's kernel (and its PyTorch path) take the same number of points on
    every level. Instead of padding, a level with ``k * g`` points (``g``
    the gcd of the counts) is given to mmcv as ``k`` *virtual levels* of
    ``g`` points that read the same memory: the CUDA kernel gets repeated
    entries of ``spatial_shapes``/``level_start_index`` pointing at the
    same slice of ``value`` (no copy; gradients from both accumulate), the
    PyTorch path (``grid_sample``, which exports to ONNX) gets that slice
    repeated. Points keep their order (level by level), so the weights and
    the sum are exactly D-FINE's; nothing is sampled twice or wasted.
    ``[3, 6, 3]`` is 4 levels of 3 points, ``[6, 6]`` and ``[4, 4, 4]`` stay
    as they are.

    Args:
        embed_dims (int): Channels of queries and memory. Defaults to 256.
        num_heads (int): Attention heads. Defaults to 8.
        num_levels (int): Memory levels. Defaults to 3.
        num_points (int | list[int]): Points per level (one int: the same on
            every level). Defaults to 4.
        offset_scale (float): Offsets are in units of ``offset_scale`` x the
            box size / points of the level. Defaults to 0.5.
        dropout (float): Dropout on the output. Defaults to 0.
        batch_first (bool): Must be True (accepted for mmdet's layer
            configs).
        im2col_step (int): Step of mmcv's CUDA kernel. Defaults to 64.
        init_cfg (dict, optional): Initialisation config.

    Shapes: ``query`` (B, Nq, C), ``value`` (B, sum(H*W), C),
    ``reference_points`` (B, Nq, 4) as (cx, cy, w, h) in [0, 1],
    ``spatial_shapes`` (L, 2) as (H, W), ``level_start_index`` (L, ).
    Returns (B, Nq, C).
    """

    def __init__(self,
                 embed_dims: int = 256,
                 num_heads: int = 8,
                 num_levels: int = 3,
                 num_points: Union[int, Sequence[int]] = 4,
                 offset_scale: float = 0.5,
                 dropout: float = 0.0,
                 batch_first: bool = True,
                 im2col_step: int = 64,
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        if embed_dims % num_heads:
            raise ValueError(f'embed_dims ({embed_dims}) must be divisible '
                             f'by num_heads ({num_heads})')
        if not batch_first:
            raise ValueError('DFINEDeformableAttention is batch first: '
                             'batch_first must be True')
        if isinstance(num_points, int):
            num_points = [num_points] * num_levels
        num_points = list(num_points)
        if len(num_points) != num_levels or not all(
                isinstance(n, int) and n > 0 for n in num_points):
            raise ValueError(
                f'num_points must be a positive int or a list of '
                f'num_levels={num_levels} positive ints (D-FINE: [3, 6, 3] '
                f'for 3 levels, [6, 6] for 2), got {num_points}')
        self.embed_dims, self.num_heads = embed_dims, num_heads
        self.num_levels, self.num_points = num_levels, num_points
        self.offset_scale, self.im2col_step = offset_scale, im2col_step
        total = sum(num_points)
        # virtual levels of gcd points each (see the class docstring)
        self.points_per_virtual_level = reduce(math.gcd, num_points)
        self.virtual_levels = [
            level for level, n in enumerate(num_points)
            for _ in range(n // self.points_per_virtual_level)
        ]
        # (sum(num_points), ): 1 / num_points of each point's level
        self.register_buffer(
            'num_points_scale',
            torch.tensor([1 / n for n in num_points for _ in range(n)]),
            persistent=False)
        self.sampling_offsets = nn.Linear(embed_dims, num_heads * total * 2)
        self.attention_weights = nn.Linear(embed_dims, num_heads * total)
        self.dropout = nn.Dropout(dropout)
        self.init_weights()

    def init_weights(self) -> None:
        """D-FINE's init: zero weights; offset biases point each head in its
        own direction (unit square edge), at distance 1..n_l on level l;
        uniform attention."""
        nn.init.zeros_(self.sampling_offsets.weight)
        theta = torch.arange(self.num_heads) * (2 * math.pi / self.num_heads)
        grid = torch.stack([theta.cos(), theta.sin()], -1)
        grid = grid / grid.abs().max(-1, keepdim=True)[0]  # (heads, 2)
        scale = torch.cat([torch.arange(1, n + 1) for n in self.num_points])
        # (heads, 1, 2) * (1, sum(points), 1) -> (heads, sum(points), 2)
        bias = grid[:, None] * scale[None, :, None]
        with torch.no_grad():
            self.sampling_offsets.bias.copy_(bias.flatten())
        nn.init.zeros_(self.attention_weights.weight)
        nn.init.zeros_(self.attention_weights.bias)

    def forward(self, query: Tensor, value: Tensor, reference_points: Tensor,
                spatial_shapes: Tensor, level_start_index: Tensor) -> Tensor:
        bs, num_query, _ = query.shape
        total = self.num_points_scale.numel()
        virtual_points = self.points_per_virtual_level
        num_virtual = len(self.virtual_levels)
        offsets = self.sampling_offsets(query).view(bs, num_query,
                                                    self.num_heads, total, 2)
        weights = self.attention_weights(query).view(bs, num_query,
                                                     self.num_heads,
                                                     total).softmax(-1)
        # (B, Nq, 4) -> (B, Nq, 1, 1, 4) against (B, Nq, heads, points, 2)
        boxes = reference_points[:, :, None, None]
        scale = self.num_points_scale.to(query.dtype)[:, None]
        locations = boxes[..., :2] + \
            offsets * scale * boxes[..., 2:] * self.offset_scale
        # level-major points -> (B, Nq, heads, virtual levels, points, .)
        locations = locations.view(bs, num_query, self.num_heads, num_virtual,
                                   virtual_points, 2)
        weights = weights.view(bs, num_query, self.num_heads, num_virtual,
                               virtual_points)
        value = value.view(bs, value.shape[1], self.num_heads, -1)
        shapes = spatial_shapes[self.virtual_levels]
        if use_compiled_kernel(value):
            output = MultiScaleDeformableAttnFunction.apply(
                value, shapes, level_start_index[self.virtual_levels],
                locations, weights, self.im2col_step)
        else:
            if num_virtual != self.num_levels:
                levels = value.split([h * w for h, w in spatial_shapes], 1)
                value = torch.cat([levels[i] for i in self.virtual_levels], 1)
            output = multi_scale_deformable_attn_pytorch(
                value, shapes, locations, weights)
        return self.dropout(output)
