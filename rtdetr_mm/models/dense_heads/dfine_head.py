"""D-FINE head: class, distribution and quality branches, predictions."""
import copy
from typing import Dict, List, Optional, Tuple

import torch
from mmcv.cnn import Linear
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.utils import InstanceList
from mmengine.model import constant_init
from torch import Tensor, nn

from ..layers.fdr import (LQE, check_reg_max, distance2bbox, integral,
                          weighting_function)
from .rtdetr_head import RTDETRHead


@MODELS.register_module()
class DFINEHead(RTDETRHead):
    """Head of `D-FINE <https://arxiv.org/abs/2410.13842>`_ (inference).

    The branches of D-FINE's decoder, as :class:`RTDETRHead` lays them out
    (``cls_branches[-1]``/``reg_branches[-1]`` score and box the encoder
    proposals), plus what Fine-grained Distribution Refinement adds:

    * ``reg_branches[i]`` (i < num_layers) predict 4 x (reg_max + 1) bin
      logits (an MLP like the box branch), decoded by
      :meth:`decode_corners` (softmax, the weighting function W of
      ``reg_max``/``up``/``reg_scale`` in the ``project`` buffer,
      ``distance2bbox``);
    * ``pre_reg_branch`` refines the encoder boxes after layer 0 into the
      fixed reference of every layer;
    * ``lqe_layers[i]`` add a localisation-quality logit to layer i's class
      logits (:class:`LQE`).

    The decoder (:class:`DFINETransformerDecoder`) calls the box branches
    while it refines; this head turns its outputs into scores and
    predictions. Predictions are RT-DETR's (sigmoid top-k over queries x
    classes). The training losses (D-FINE's VFL, L1/GIoU, FGL and DDF) are
    not implemented yet: :meth:`loss` gathers every output they need and
    :meth:`loss_by_feat` raises ``NotImplementedError``.

    Args:
        num_classes (int): Number of object classes.
        embed_dims (int): Channels of the decoder queries. Defaults to 256.
        num_reg_fcs (int): Hidden layers of the box/distribution MLPs.
            Defaults to 2.
        reg_max (int): Bins minus one per edge, even. Defaults to 32.
        reg_scale (float): Curvature of W (D-FINE-S/M/L: 4, X: 8).
            Defaults to 4.0.
        up (float): Range of W's fine part, in units of ``reg_scale``.
            Defaults to 0.5.
        lqe_cfg (dict): :class:`LQE` arguments other than ``reg_max``.
            Defaults to ``dict(topk=4, hidden_dims=64, num_layers=2)``.
        **kwargs: :class:`RTDETRHead` arguments (losses, ``train_cfg``,
            ``test_cfg``) and ``num_pred_layer``/``as_two_stage``/
            ``share_pred_layer``, which the detector sets.

    Example:
        >>> import torch
        >>> head = DFINEHead(num_classes=3, embed_dims=32, num_pred_layer=2,
        ...                  as_two_stage=True, reg_max=8)
        >>> corners = head.reg_branches[0](torch.rand(2, 5, 32))
        >>> tuple(corners.shape)
        (2, 5, 36)
        >>> boxes = head.decode_corners(torch.rand(2, 5, 4), corners)
        >>> tuple(boxes.shape)
        (2, 5, 4)
    """

    def __init__(self,
                 *args,
                 reg_max: int = 32,
                 reg_scale: float = 4.0,
                 up: float = 0.5,
                 lqe_cfg: dict = dict(topk=4, hidden_dims=64, num_layers=2),
                 **kwargs) -> None:
        check_reg_max(reg_max)
        self.reg_max, self.reg_scale, self.up = reg_max, reg_scale, up
        self.lqe_cfg = dict(lqe_cfg)
        super().__init__(*args, **kwargs)
        # W(n): from the config, not saved (official checkpoints store up and
        # reg_scale; the key converter checks them against the config)
        self.register_buffer(
            'project',
            weighting_function(reg_max, up, reg_scale),
            persistent=False)

    def _init_layers(self) -> None:
        """Class branches (num_layers + 1), distribution branches
        (num_layers) + the encoder box branch, ``pre_reg_branch`` and
        ``lqe_layers`` (num_layers)."""
        if self.share_pred_layer or not self.as_two_stage:
            raise ValueError(
                'DFINEHead needs one branch per decoder layer and the '
                'encoder-proposal branches (share_pred_layer=False, '
                f'as_two_stage=True, set by the DFINE detector), got '
                f'share_pred_layer={self.share_pred_layer}, '
                f'as_two_stage={self.as_two_stage}')
        num_layers = self.num_pred_layer - 1

        def mlp(out_channels: int) -> nn.Sequential:
            layers = []
            for _ in range(self.num_reg_fcs):
                layers += [Linear(self.embed_dims, self.embed_dims), nn.ReLU()]
            return nn.Sequential(*layers, Linear(self.embed_dims,
                                                 out_channels))

        fc_cls = Linear(self.embed_dims, self.cls_out_channels)
        self.cls_branches = nn.ModuleList(
            copy.deepcopy(fc_cls) for _ in range(self.num_pred_layer))
        self.reg_branches = nn.ModuleList(
            [mlp(4 * (self.reg_max + 1))
             for _ in range(num_layers)] + [mlp(4)])
        self.pre_reg_branch = mlp(4)
        self.lqe_layers = nn.ModuleList(
            LQE(self.reg_max, **self.lqe_cfg) for _ in range(num_layers))

    def init_weights(self) -> None:
        """D-FINE's init: class biases for a prior of 0.01, the last layer
        of every box/distribution branch and of the quality MLPs zero (all
        boxes start at their reference)."""
        super().init_weights()
        constant_init(self.pre_reg_branch[-1], 0, bias=0)
        for lqe in self.lqe_layers:
            lqe.init_weights()

    def decode_corners(self, ref_points: Tensor,
                       pred_corners: Tensor) -> Tensor:
        """Boxes from bin logits around fixed reference boxes.

        Args:
            ref_points (Tensor): (..., 4) as (cx, cy, w, h).
            pred_corners (Tensor): (..., 4 * (reg_max + 1)).

        Returns:
            Tensor: (..., 4) as (cx, cy, w, h).
        """
        return distance2bbox(ref_points, integral(pred_corners, self.project),
                             self.reg_scale)

    def forward(self, hidden_states: Tensor, pred_corners: Tensor,
                pred_bboxes: Tensor, **kwargs) -> Tuple[Tensor, Tensor]:
        """Class logits (with the quality logit) of every decoder layer run.

        Args:
            hidden_states (Tensor): (K, B, Nq, C) decoder layer outputs.
            pred_corners (Tensor): (K, B, Nq, 4 * (reg_max + 1)).
            pred_bboxes (Tensor): (K, B, Nq, 4), returned as they are.
            **kwargs: The decoder's other outputs (ignored).

        Returns:
            tuple[Tensor]: ``all_layers_cls_scores`` (K, B, Nq, num_classes)
            and ``all_layers_bbox_preds`` (K, B, Nq, 4) (cx, cy, w, h).
        """
        cls_scores = torch.stack([
            self.lqe_layers[i](self.cls_branches[i](hidden_states[i]),
                               pred_corners[i])
            for i in range(hidden_states.shape[0])
        ])
        return cls_scores, pred_bboxes

    def predict(self,
                hidden_states: Tensor,
                pred_corners: Tensor,
                pred_bboxes: Tensor,
                batch_data_samples: SampleList,
                rescale: bool = True,
                **kwargs) -> InstanceList:
        """Top-k detections of the last run layer (the decoder's
        ``eval_idx``), like :class:`RTDETRHead`.

        Returns:
            list[InstanceData]: ``bboxes`` (k, 4) xyxy, ``scores``,
            ``labels`` per image.
        """
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        outs = self(hidden_states, pred_corners, pred_bboxes)
        return self.predict_by_feat(
            *outs, batch_img_metas=batch_img_metas, rescale=rescale)

    def loss(self,
             hidden_states: Tensor,
             pred_corners: Tensor,
             pred_bboxes: Tensor,
             ref_points: Tensor,
             pre_bboxes: Tensor,
             enc_outputs_class: Tensor,
             enc_outputs_coord: Tensor,
             batch_data_samples: SampleList,
             dn_meta: Optional[Dict[str, int]] = None,
             **kwargs) -> dict:
        """Gather D-FINE's training outputs and call :meth:`loss_by_feat`.

        Args are the outputs of :meth:`DFINE.forward_transformer` in
        training (the decoder's, see
        :meth:`DFINETransformerDecoder.forward`, and the encoder
        proposals'); queries are ``Nq = num_dn + num_queries`` with the
        denoising queries first.
        """
        batch_gt_instances = [s.gt_instances for s in batch_data_samples]
        batch_img_metas = [s.metainfo for s in batch_data_samples]
        all_cls_scores, all_bbox_preds = self(hidden_states, pred_corners,
                                              pred_bboxes)
        return self.loss_by_feat(
            all_layers_cls_scores=all_cls_scores,
            all_layers_bbox_preds=all_bbox_preds,
            all_layers_pred_corners=pred_corners,
            ref_points=ref_points,
            pre_cls_scores=self.cls_branches[0](hidden_states[0]),
            pre_bbox_preds=pre_bboxes,
            enc_cls_scores=enc_outputs_class,
            enc_bbox_preds=enc_outputs_coord,
            batch_gt_instances=batch_gt_instances,
            batch_img_metas=batch_img_metas,
            dn_meta=dn_meta)

    def loss_by_feat(self,
                     all_layers_cls_scores: Tensor,
                     all_layers_bbox_preds: Tensor,
                     all_layers_pred_corners: Tensor,
                     ref_points: Tensor,
                     pre_cls_scores: Tensor,
                     pre_bbox_preds: Tensor,
                     enc_cls_scores: Tensor,
                     enc_bbox_preds: Tensor,
                     batch_gt_instances: InstanceList,
                     batch_img_metas: List[dict],
                     dn_meta: Optional[Dict[str, int]] = None) -> dict:
        """D-FINE's losses: not implemented yet.

        Args (``L`` decoder layers, ``Nq = num_dn + num_queries``, the
        denoising queries first; split them with :meth:`split_queries`):
            all_layers_cls_scores (Tensor): (L, B, Nq, num_classes) logits
                with the LQE term; ``[-1]`` is the distillation teacher.
            all_layers_bbox_preds (Tensor): (L, B, Nq, 4) boxes (cx, cy, w,
                h) in [0, 1].
            all_layers_pred_corners (Tensor): (L, B, Nq, 4 * (reg_max + 1))
                bin logits, residual over layers (not detached); ``[-1]``
                is the teacher of the DDF loss.
            ref_points (Tensor): (B, Nq, 4) the fixed reference every layer
                decodes against (detached); D-FINE's ``ref_points`` of every
                layer.
            pre_cls_scores (Tensor): (B, Nq, num_classes) logits of layer 0
                without the LQE term (D-FINE's ``pre_outputs``).
            pre_bbox_preds (Tensor): (B, Nq, 4) ``pre_reg_branch`` boxes.
            enc_cls_scores (Tensor): (B, num_queries, num_classes) logits of
                the selected encoder proposals.
            enc_bbox_preds (Tensor): (B, num_queries, 4) their boxes.
            batch_gt_instances (list[InstanceData]): ``bboxes`` (xyxy,
                pixels) and ``labels`` per image.
            batch_img_metas (list[dict]): Image metas.
            dn_meta (dict, optional): ``num_denoising_queries`` and
                ``num_denoising_groups``; None without denoising.

        The box coding for the targets is in :mod:`rtdetr_mm.models.layers.
        fdr` and on the head: ``self.project`` (W), ``self.reg_max``,
        ``self.reg_scale``, ``self.up``.
        """
        raise NotImplementedError(
            'DFINEHead has no training losses yet (D-FINE\'s VFL, L1/GIoU, '
            'FGL and DDF): only inference (predict, export) is supported. '
            'DFINEHead.loss_by_feat documents the outputs a loss receives.')

    @staticmethod
    def split_queries(tensor: Tensor, dn_meta: Optional[Dict[str, int]],
                      dim: int) -> Tuple[Tensor, Optional[Tensor]]:
        """Split ``tensor`` along its query dimension ``dim`` into matching
        and denoising parts (denoising first in the input); the denoising
        part is None when ``dn_meta`` is None."""
        if dn_meta is None:
            return tensor, None
        num_dn = dn_meta['num_denoising_queries']
        return (tensor.narrow(dim, num_dn, tensor.shape[dim] - num_dn),
                tensor.narrow(dim, 0, num_dn))
