"""RT-DETR's transformer decoder (deformable cross-attention, box MLP pos)."""
from typing import Dict, List, Union

import torch
from mmcv.cnn import build_norm_layer
from mmcv.cnn.bricks.transformer import FFN, MultiheadAttention
from mmdet.models.layers import (DeformableDetrTransformerDecoder,
                                 DeformableDetrTransformerDecoderLayer,
                                 inverse_sigmoid)
from torch import Tensor, nn

from .mlp import MLP
from .ms_deform_attn import BoxDeformableAttention


class RTDETRTransformerDecoderLayer(DeformableDetrTransformerDecoderLayer):
    """mmdet's Deformable-DETR decoder layer, which is RT-DETR's layer, with
    :class:`BoxDeformableAttention` as cross-attention (it runs on GPUs whose
    mmcv lacks CUDA ops). Same arguments and keys as mmdet's layer."""

    def _init_layers(self) -> None:
        """Self-attention, box deformable cross-attention, FFN, 3 norms."""
        self.self_attn = MultiheadAttention(**self.self_attn_cfg)
        self.cross_attn = BoxDeformableAttention(**self.cross_attn_cfg)
        self.embed_dims = self.self_attn.embed_dims
        self.ffn = FFN(**self.ffn_cfg)
        self.norms = nn.ModuleList(
            build_norm_layer(self.norm_cfg, self.embed_dims)[1]
            for _ in range(3))


class RTDETRTransformerDecoder(DeformableDetrTransformerDecoder):
    """Decoder of RT-DETR, built from mmdet's Deformable-DETR decoder layers.

    Each layer is mmdet's ``DeformableDetrTransformerDecoderLayer``
    (self-attention -> LN -> multi-scale deformable cross-attention -> LN ->
    FFN -> LN), which is RT-DETR's layer, with the cross-attention of
    :class:`RTDETRTransformerDecoderLayer`. What RT-DETR changes compared with
    mmdet's ``DinoTransformerDecoder``:

    * the query position is ``ref_point_head(box)``, an MLP of the raw
      (cx, cy, w, h) reference box (4 -> 2*dim -> dim; DEIM's ``as_reg``:
      4 -> dim -> dim -> dim), not of its sine encoding;
    * no final LayerNorm on the decoder output;
    * iterative refinement uses ``inverse_sigmoid`` with eps 1e-5 (DINO's
      decoder uses 1e-3), boxes are detached between layers only in
      training;
    * in eval mode the decoder stops after layer ``eval_idx`` and returns
      the layers up to it, so the head predicts from that layer.

    Args:
        num_layers (int): Number of decoder layers.
        layer_cfg (dict): Config of ``DeformableDetrTransformerDecoderLayer``.
        eval_idx (int): Layer used for prediction in eval mode; negative
            counts from the end. Defaults to -1.
        query_pos_method (str): ``'default'`` (RT-DETR, D-FINE: 2 layers,
            hidden 2*dim) or ``'as_reg'`` (DEIM's RT-DETRv2: 3 layers,
            hidden dim, like a box branch). Defaults to ``'default'``.
        mlp_act_cfg (dict): Activation of ``ref_point_head``. Defaults to
            ReLU (DEIM: SiLU).
        post_norm_cfg (dict, optional): Must be None (no final norm).
        return_intermediate (bool): Must be True.
        init_cfg (dict, optional): Initialisation config.

    Example:
        >>> import torch
        >>> dec = RTDETRTransformerDecoder(num_layers=2, layer_cfg=dict(
        ...     self_attn_cfg=dict(embed_dims=32, num_heads=4),
        ...     cross_attn_cfg=dict(embed_dims=32, num_heads=4,
        ...                         num_levels=1, num_points=2),
        ...     ffn_cfg=dict(embed_dims=32, feedforward_channels=64)))
        >>> dec.ref_point_head.layers[0].in_features
        4
    """

    layer_type = RTDETRTransformerDecoderLayer

    # query_pos_method -> (layers, hidden width in units of embed_dims)
    query_pos_layouts = dict(default=(2, 2), as_reg=(3, 1))

    def __init__(self,
                 *args,
                 eval_idx: int = -1,
                 query_pos_method: str = 'default',
                 mlp_act_cfg: dict = dict(type='ReLU'),
                 **kwargs) -> None:
        if query_pos_method not in self.query_pos_layouts:
            raise ValueError(
                f'query_pos_method must be one of '
                f'{sorted(self.query_pos_layouts)}, got {query_pos_method!r}')
        self.query_pos_method = query_pos_method
        self.mlp_act_cfg = mlp_act_cfg
        kwargs.setdefault('post_norm_cfg', None)
        super().__init__(*args, **kwargs)
        if not -self.num_layers <= eval_idx < self.num_layers:
            raise ValueError(
                f'eval_idx must be in [-{self.num_layers}, '
                f'{self.num_layers - 1}] for {self.num_layers} decoder '
                f'layers, got {eval_idx}')
        self.eval_idx = eval_idx % self.num_layers

    def _init_layers(self) -> None:
        """Build the layers (``layer_type``) and the box-to-position MLP."""
        if self.post_norm_cfg is not None:
            raise ValueError(f'{type(self).__name__} has no final norm: '
                             'post_norm_cfg must be None, got '
                             f'{self.post_norm_cfg}')
        self.layers = nn.ModuleList(
            self.layer_type(**self.layer_cfg) for _ in range(self.num_layers))
        self.embed_dims = self.layers[0].embed_dims
        num_layers, width = self.query_pos_layouts[self.query_pos_method]
        self.ref_point_head = MLP(4, width * self.embed_dims, self.embed_dims,
                                  num_layers, self.mlp_act_cfg)

    def forward(self, query: Tensor, value: Tensor, self_attn_mask: Tensor,
                reference_points: Tensor, spatial_shapes: Tensor,
                level_start_index: Tensor, reg_branches: nn.ModuleList,
                **kwargs) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """Run the decoder layers with iterative box refinement.

        Args:
            query (Tensor): Content queries, (bs, num_queries_total, dim).
            value (Tensor): Flattened multi-level memory, (bs, sum(H*W), dim).
            self_attn_mask (Tensor, optional): Denoising attention mask,
                (num_queries_total, num_queries_total), True = blocked.
            reference_points (Tensor): Initial boxes (cx, cy, w, h) in
                [0, 1], (bs, num_queries_total, 4), detached.
            spatial_shapes (Tensor): (num_levels, 2) as (H, W).
            level_start_index (Tensor): (num_levels,).
            reg_branches (nn.ModuleList): The head's box branches.

        Returns:
            dict: ``hidden_states`` (num_run_layers, bs, num_queries_total,
            dim) and ``references``, the initial boxes followed by each
            run layer's refined boxes (not detached), each
            (bs, num_queries_total, 4).
        """
        intermediate = []
        references = [reference_points]
        for lid, layer in enumerate(self.layers):
            query_pos = self.ref_point_head(reference_points)
            query = layer(
                query,
                query_pos=query_pos,
                value=value,
                self_attn_mask=self_attn_mask,
                # (bs, nq, 4) -> (bs, nq, 1, 4): one box for every level
                reference_points=reference_points.unsqueeze(2),
                spatial_shapes=spatial_shapes,
                level_start_index=level_start_index,
                **kwargs)
            new_reference_points = (
                reg_branches[lid](query) +
                inverse_sigmoid(reference_points, eps=1e-5)).sigmoid()
            intermediate.append(query)
            references.append(new_reference_points)
            if not self.training and lid == self.eval_idx:
                break
            reference_points = new_reference_points.detach() \
                if self.training else new_reference_points
        return dict(
            hidden_states=torch.stack(intermediate), references=references)
