"""D-FINE's transformer decoder: gated cross-attention and FDR refinement."""
from typing import Callable, Dict

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmdet.models.layers import (DeformableDetrTransformerDecoderLayer,
                                 inverse_sigmoid)
from mmdet.utils import ConfigType, OptConfigType
from mmengine.model import BaseModule, bias_init_with_prob
from torch import Tensor, nn

from .ms_deform_attn import DFINEDeformableAttention
from .rtdetr_decoder import RTDETRTransformerDecoder

# float16's range: D-FINE clamps before the last norm so fp16 cannot overflow
FP16_MAX = 65504.0


class Gate(BaseModule):
    """D-FINE's gated fusion of a query with its cross-attention output.

    ``norm(g1 * x1 + g2 * x2)`` with ``(g1, g2) = sigmoid(linear([x1, x2]))``
    split in halves; at initialisation g1 = g2 = 0.5.

    Args:
        embed_dims (int): Channels C.
        norm_cfg (dict): Norm after the fusion. Defaults to LN.
        init_cfg (dict, optional): Initialisation config.

    Shapes: ``x1``, ``x2`` (..., C) -> (..., C).
    """

    def __init__(self,
                 embed_dims: int,
                 norm_cfg: ConfigType = dict(type='LN'),
                 init_cfg: OptConfigType = None) -> None:
        super().__init__(init_cfg=init_cfg)
        self.linear = nn.Linear(2 * embed_dims, 2 * embed_dims)
        self.norm = build_norm_layer(norm_cfg, embed_dims)[1]
        self.init_weights()

    def init_weights(self) -> None:
        """Zero weight, biases for a gate of 0.5 (D-FINE's init)."""
        nn.init.zeros_(self.linear.weight)
        nn.init.constant_(self.linear.bias, bias_init_with_prob(0.5))

    def forward(self, x1: Tensor, x2: Tensor) -> Tensor:
        gates = self.linear(torch.cat([x1, x2], -1)).sigmoid()
        gate1, gate2 = gates.chunk(2, dim=-1)
        return self.norm(gate1 * x1 + gate2 * x2)


class DFINETransformerDecoderLayer(DeformableDetrTransformerDecoderLayer):
    """D-FINE's decoder layer.

    Self-attention -> add & norm -> :class:`DFINEDeformableAttention`
    (on ``query + query_pos``) -> :class:`Gate` (instead of add & norm) ->
    FFN -> clamp to the float16 range -> norm. Same arguments as mmdet's
    ``DeformableDetrTransformerDecoderLayer``; ``cross_attn_cfg`` are
    :class:`DFINEDeformableAttention`'s (``num_points`` may be a list).
    Modules: ``self_attn``, ``norms[0]``, ``cross_attn``, ``gate``, ``ffn``,
    ``norms[1]``.
    """

    def _init_layers(self) -> None:
        """Self-attention, cross-attention, gate, FFN and two norms."""
        self.self_attn = MultiheadAttention(**self.self_attn_cfg)
        self.cross_attn = DFINEDeformableAttention(**self.cross_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.gate = Gate(self.embed_dims, self.norm_cfg)
        self.ffn = FFN(**self.ffn_cfg)
        self.norms = nn.ModuleList(
            build_norm_layer(self.norm_cfg, self.embed_dims)[1]
            for _ in range(2))

    def init_weights(self) -> None:
        """Children's init, then xavier for the FFN's linears (D-FINE)."""
        super().init_weights()
        for m in self.ffn.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)

    def forward(self,
                query: Tensor,
                query_pos: Tensor,
                value: Tensor,
                reference_points: Tensor,
                spatial_shapes: Tensor,
                level_start_index: Tensor,
                self_attn_mask: Tensor = None,
                **kwargs) -> Tensor:
        """
        Args:
            query (Tensor): (B, Nq, C).
            query_pos (Tensor): (B, Nq, C).
            value (Tensor): Flattened memory (B, sum(H*W), C).
            reference_points (Tensor): Boxes (B, Nq, 4) in [0, 1].
            spatial_shapes (Tensor): (L, 2) as (H, W).
            level_start_index (Tensor): (L, ).
            self_attn_mask (Tensor, optional): (Nq, Nq), True = blocked.

        Returns:
            Tensor: (B, Nq, C).
        """
        query = self.self_attn(
            query=query,
            key=query,
            value=query,
            query_pos=query_pos,
            key_pos=query_pos,
            attn_mask=self_attn_mask)  # with the residual
        query = self.norms[0](query)
        attn = self.cross_attn(query + query_pos, value, reference_points,
                               spatial_shapes, level_start_index)
        query = self.gate(query, attn)
        query = self.ffn(query)  # with the residual
        return self.norms[1](query.clamp(-FP16_MAX, FP16_MAX))


class DFINETransformerDecoder(RTDETRTransformerDecoder):
    """D-FINE's decoder: Fine-grained Distribution Refinement (FDR).

    What changes compared with :class:`RTDETRTransformerDecoder`:

    * the layers are :class:`DFINETransformerDecoderLayer`;
    * the query position ``ref_point_head(box)`` is clamped to [-10, 10];
    * after layer 0 the head's ``pre_reg_branch`` refines the input boxes
      (``sigmoid(branch(x) + inverse_sigmoid(box))``); that box, detached,
      is the fixed reference of every layer's box;
    * each layer predicts edge-distance *distributions*, residually:
      ``corners_i = reg_branches[i](x_i + x_{i-1}.detach()) + corners_{i-1}``
      (the previous corners are not detached), decoded against the fixed
      reference with ``decode_corners`` (integral + ``distance2bbox``);
      layer i + 1 attends around layer i's box (detached).

    Arguments are :class:`RTDETRTransformerDecoder`'s (``num_layers``,
    ``layer_cfg``, ``eval_idx``); in eval mode the decoder stops after layer
    ``eval_idx``.

    Example:
        >>> dec = DFINETransformerDecoder(num_layers=2, layer_cfg=dict(
        ...     self_attn_cfg=dict(embed_dims=32, num_heads=4),
        ...     cross_attn_cfg=dict(embed_dims=32, num_heads=4,
        ...                         num_levels=2, num_points=[3, 6]),
        ...     ffn_cfg=dict(embed_dims=32, feedforward_channels=64)))
        >>> dec.layers[0].cross_attn.virtual_levels
        [0, 1, 1]
    """

    layer_type = DFINETransformerDecoderLayer

    def forward(self, query: Tensor, value: Tensor, self_attn_mask: Tensor,
                reference_points: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, reg_branches: nn.ModuleList,
                pre_reg_branch: nn.Module,
                decode_corners: Callable[[Tensor, Tensor], Tensor],
                **kwargs) -> Dict[str, Tensor]:
        """Run the layers with FDR refinement.

        Args:
            query (Tensor): Content queries (B, Nq, C).
            value (Tensor): Flattened memory (B, sum(H*W), C).
            self_attn_mask (Tensor, optional): Denoising mask (Nq, Nq), True
                = blocked.
            reference_points (Tensor): Initial boxes (B, Nq, 4) as
                (cx, cy, w, h) in [0, 1], detached.
            spatial_shapes (Tensor): (L, 2) as (H, W).
            level_start_index (Tensor): (L, ).
            reg_branches (nn.ModuleList): The head's distribution branches,
                ``reg_branches[i]``: (..., C) -> (..., 4 * (reg_max + 1)).
            pre_reg_branch (nn.Module): The head's layer-0 box branch,
                (..., C) -> (..., 4) logit offsets.
            decode_corners (callable): ``(ref_points, corners) -> boxes``,
                the head's :meth:`DFINEHead.decode_corners`.

        Returns:
            dict: for the ``K`` run layers (all in training, up to
            ``eval_idx`` in eval):

            - ``hidden_states`` (K, B, Nq, C): layer outputs;
            - ``pred_corners`` (K, B, Nq, 4 * (reg_max + 1)): bin logits;
            - ``pred_bboxes`` (K, B, Nq, 4): boxes (cx, cy, w, h);
            - ``ref_points`` (B, Nq, 4): the fixed reference (detached
              ``pre_bboxes``) all layers decode against;
            - ``pre_bboxes`` (B, Nq, 4): layer 0's ``pre_reg_branch`` boxes.
        """
        hidden_states, all_corners, all_bboxes = [], [], []
        prev_corners = prev_query = 0
        for lid, layer in enumerate(self.layers):
            query_pos = self.ref_point_head(reference_points).clamp(-10, 10)
            query = layer(
                query,
                query_pos=query_pos,
                value=value,
                reference_points=reference_points,
                spatial_shapes=spatial_shapes,
                level_start_index=level_start_index,
                self_attn_mask=self_attn_mask)
            if lid == 0:
                pre_bboxes = (
                    pre_reg_branch(query) +
                    inverse_sigmoid(reference_points, eps=1e-5)).sigmoid()
                ref_points = pre_bboxes.detach()
            corners = reg_branches[lid](query + prev_query) + prev_corners
            bboxes = decode_corners(ref_points, corners)
            hidden_states.append(query)
            all_corners.append(corners)
            all_bboxes.append(bboxes)
            if not self.training and lid == self.eval_idx:
                break
            prev_corners, prev_query = corners, query.detach()
            reference_points = bboxes.detach()
        return dict(
            hidden_states=torch.stack(hidden_states),
            pred_corners=torch.stack(all_corners),
            pred_bboxes=torch.stack(all_bboxes),
            ref_points=ref_points,
            pre_bboxes=pre_bboxes)
