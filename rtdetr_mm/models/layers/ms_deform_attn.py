"""Multi-scale deformable attention that runs wherever PyTorch runs.

mmcv's ``MultiScaleDeformableAttention`` calls its compiled CUDA kernel for
every CUDA tensor, so on a GPU machine whose mmcv was built without CUDA ops
(no ``nvcc`` at install time, as ``tools/setup.sh`` then does) it fails. The
official RT-DETR samples with ``grid_sample`` in plain PyTorch. This subclass
keeps mmcv's parameters, initialisation and key names (official checkpoints
convert unchanged) and picks the kernel per call: mmcv's compiled op where it
exists for the tensor's device, mmcv's PyTorch path otherwise.
"""
from functools import lru_cache

from mmcv.ops import MultiScaleDeformableAttention
from mmcv.ops.multi_scale_deform_attn import (
    MultiScaleDeformableAttnFunction, multi_scale_deformable_attn_pytorch)
from torch import Tensor


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
