"""D-FINE head: class, distribution and quality branches, predictions and
D-FINE's training losses."""
import copy
from functools import partial
from typing import Dict, List, NamedTuple, Optional, Tuple

import torch
from mmcv.cnn import Linear
from mmdet.models.task_modules.assigners import IoUCost
from mmdet.registry import MODELS
from mmdet.structures import SampleList
from mmdet.structures.bbox import (bbox_cxcywh_to_xyxy, bbox_overlaps,
                                   bbox_xyxy_to_cxcywh)
from mmdet.utils import InstanceList, reduce_mean
from mmengine.model import constant_init
from mmengine.structures import InstanceData
from torch import Tensor, nn

from ..layers.fdr import (LQE, check_reg_max, distance2bbox, integral,
                          weighting_function)
from ..losses import bbox2distance, ddf_weight, go_union_assignments
from .rtdetr_head import RTDETRHead

# two tensors: (query_inds, gt_inds), DDF's (s_pos, s_neg), a teacher's
# (corners, logits)
TensorPair = Tuple[Tensor, Tensor]


class MatchTargets(NamedTuple):
    """Targets of the ``B x N`` queries of one output under one matching
    (``M`` matched queries)."""
    labels: Tensor  # (B * N, ) class, num_classes = background
    pos_inds: Tensor  # (M, ) flat indices of the matched queries
    bbox_targets: Tensor  # (M, 4) their GT (cx, cy, w, h) in [0, 1]
    factors: Tensor  # (M, 4) (w, h, w, h) of their image, in pixels

    def pos_mask(self, shape: Tuple[int, int]) -> Tensor:
        """(B, N) bool, True for the matched queries."""
        mask = self.labels.new_zeros(shape[0] * shape[1], dtype=torch.bool)
        mask[self.pos_inds] = True
        return mask.view(shape)


class SizeClampedIoUCost:
    """An IoU match cost that sees predicted boxes of negative width or
    height as boxes of size 0 at their centre, as D-FINE's matcher does
    (its ``box_cxcywh_to_xyxy`` clamps the size).

    FDR can predict an inverted box; mmdet's ``IoUCost`` would take its
    negative area and inverted corners into the (G)IoU. The other costs
    (L1 on (cx, cy, w, h)) see the size as predicted, as in D-FINE.

    Args:
        cost (callable): The wrapped cost (mmdet's ``IoUCost``).
    """

    def __init__(self, cost) -> None:
        self.cost = cost

    def __call__(self, pred_instances: InstanceData,
                 gt_instances: InstanceData, *args, **kwargs) -> Tensor:
        """The wrapped cost of ``pred_instances.bboxes`` (N, 4) (x1, y1, x2,
        y2) with inverted sides collapsed to their centre."""
        boxes = pred_instances.bboxes
        centre = (boxes[..., :2] + boxes[..., 2:]) / 2
        pred = pred_instances.clone()
        pred.bboxes = torch.cat(
            [boxes[..., :2].minimum(centre), boxes[..., 2:].maximum(centre)],
            -1)
        return self.cost(pred, gt_instances, *args, **kwargs)


@MODELS.register_module()
class DFINEHead(RTDETRHead):
    """Head of `D-FINE <https://arxiv.org/abs/2410.13842>`_.

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
    classes). The losses are D-FINE's criterion (:meth:`loss_by_feat`):
    RT-DETR's VFL, L1 and GIoU with GO-LSD's union of matchings for the box
    terms, plus FGL and DDF on the distributions.

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
        loss_fgl (dict): Defaults to :class:`FineGrainedLocalizationLoss`
            with weight 0.15.
        loss_ddf (dict): Defaults to :class:`DecoupledDistillationFocalLoss`
            with T 5 and weight 1.5.
        **kwargs: :class:`RTDETRHead` arguments (``loss_cls`` VFL 1,
            ``loss_bbox`` L1 5, ``loss_iou`` GIoU 2, ``train_cfg``: its
            Hungarian assigner's ``IoUCost`` is wrapped in
            :class:`SizeClampedIoUCost`, ``test_cfg``) and
            ``num_pred_layer``/``as_two_stage``/``share_pred_layer``, which
            the detector sets.

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
                 loss_fgl: dict = dict(
                     type='FineGrainedLocalizationLoss', loss_weight=0.15),
                 loss_ddf: dict = dict(
                     type='DecoupledDistillationFocalLoss',
                     T=5.0,
                     loss_weight=1.5),
                 **kwargs) -> None:
        check_reg_max(reg_max)
        self.reg_max, self.reg_scale, self.up = reg_max, reg_scale, up
        self.lqe_cfg = dict(lqe_cfg)
        super().__init__(*args, **kwargs)
        self.loss_fgl = MODELS.build(loss_fgl)
        self.loss_ddf = MODELS.build(loss_ddf)
        assigner = getattr(self, 'assigner', None)  # training only
        if hasattr(assigner, 'match_costs'):
            assigner.match_costs = [
                SizeClampedIoUCost(c) if isinstance(c, IoUCost) else c
                for c in assigner.match_costs
            ]
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

        fc_cls = Linear(self.embed_dims, self.cls_out_channels)
        self.cls_branches = nn.ModuleList(
            copy.deepcopy(fc_cls) for _ in range(self.num_pred_layer))
        self.reg_branches = nn.ModuleList(
            [self._mlp(4 * (self.reg_max + 1))
             for _ in range(num_layers)] + [self._mlp(4)])
        self.pre_reg_branch = self._mlp(4)
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
        """D-FINE's losses (the official ``DFINECriterion``).

        Every output (each decoder layer, layer 0's ``pre`` boxes, the
        encoder proposals) is matched on its own (Hungarian, ``train_cfg``);
        GO-LSD's union of all these matchings (:func:`go_union_assignments`)
        is the matching of the box losses:

        * VFL (``loss_cls``): the output's own matching, normalised by
          ``num_boxes`` (the number of GT, averaged over GPUs with
          ``sync_cls_avg_factor``, >= 1);
        * L1 and GIoU (``loss_bbox``, ``loss_iou``) of every output, FGL
          (``loss_fgl``) of every decoder layer: the union, normalised by
          ``num_boxes_go`` (its number of pairs);
        * DDF (``loss_ddf``) of every decoder layer but the last (its
          teacher): the union as matched queries.

        Denoising queries (``dn_meta``) of every layer and of ``pre`` get
        VFL, L1, GIoU (and FGL, DDF for the layers) with the denoising
        matching (group g's positive j -> GT j), normalised by ``num_boxes
        * num_groups``; their DDF teacher is the last layer's denoising
        output and its pos/neg balance is the matching queries'.

        Loss names (official ``DFINECriterion`` names in brackets; ``X`` is
        ``cls`` [``vfl``], ``bbox`` [``bbox``], ``iou`` [``giou``], ``fgl``
        [``fgl``], ``ddf`` [``ddf``]):

        * ``loss_X``: last layer [``loss_X``] (no ``ddf``);
        * ``d{i}.loss_X``: layer i < L - 1 [``loss_X_aux_{i}``];
        * ``pre_loss_X`` [``loss_X_pre``], ``enc_loss_X``
          [``loss_X_enc_0``]: ``cls``, ``bbox``, ``iou`` only;
        * ``dn_loss_X``, ``d{i}.dn_loss_X`` [``loss_X_dn_{L-1}``,
          ``loss_X_dn_{i}``] (no ``dn_loss_ddf``: the official one is 0),
          ``pre_dn_loss_X`` [``loss_X_dn_pre``].

        Every IoU (the assigner's GIoU cost through
        :class:`SizeClampedIoUCost`, the VFL targets, GIoU, the FGL/DDF
        weights) sees a predicted width/height clamped at 0, as D-FINE's
        ``box_cxcywh_to_xyxy``; L1 (loss and cost) sees it as predicted.
        Unlike the official criterion, non-finite terms are not replaced by
        0 (``nan_to_num``): a NaN/inf term stays so, and ``FiniteLossHook``
        stops training naming it.

        Args (``L`` decoder layers, ``Nq = num_dn + num_queries``, the
        denoising queries first):
            all_layers_cls_scores (Tensor): (L, B, Nq, num_classes) logits
                with the LQE term; ``[-1]`` is the distillation teacher.
            all_layers_bbox_preds (Tensor): (L, B, Nq, 4) boxes (cx, cy, w,
                h) in [0, 1].
            all_layers_pred_corners (Tensor): (L, B, Nq, 4 * (reg_max + 1))
                bin logits; ``[-1]`` is the distillation teacher.
            ref_points (Tensor): (B, Nq, 4) the fixed reference every layer
                decodes against (detached).
            pre_cls_scores (Tensor): (B, Nq, num_classes) logits of layer 0
                without the LQE term (D-FINE's ``pre_outputs``).
            pre_bbox_preds (Tensor): (B, Nq, 4) ``pre_reg_branch`` boxes.
            enc_cls_scores (Tensor): (B, num_queries, num_classes) logits of
                the selected encoder proposals.
            enc_bbox_preds (Tensor): (B, num_queries, 4) their boxes.
            batch_gt_instances (list[InstanceData]): ``bboxes`` (xyxy,
                pixels) and ``labels`` per image.
            batch_img_metas (list[dict]): Image metas (``img_shape``).
            dn_meta (dict, optional): ``num_denoising_queries`` and
                ``num_denoising_groups``; None without denoising.

        Returns:
            dict[str, Tensor]: The loss terms named above.
        """
        split = partial(self.split_queries, dn_meta=dn_meta)
        cls, dn_cls = split(all_layers_cls_scores, dim=2)
        boxes, dn_boxes = split(all_layers_bbox_preds, dim=2)
        corners, dn_corners = split(all_layers_pred_corners, dim=2)
        refs, dn_refs = split(ref_points, dim=1)
        pre_cls, dn_pre_cls = split(pre_cls_scores, dim=1)
        pre_boxes, dn_pre_boxes = split(pre_bbox_preds, dim=1)
        gts, metas = batch_gt_instances, batch_img_metas
        num_layers, num_queries = cls.shape[0], cls.shape[2]
        num_boxes = self._num_boxes(gts, cls)

        # own matching of every output; their union for the box losses
        outputs = [
            *zip(cls, boxes), (pre_cls, pre_boxes),
            (enc_cls_scores, enc_bbox_preds)
        ]
        assigns = [self._assign(c, b, gts, metas) for c, b in outputs]
        go_pairs, num_boxes_go = go_union_assignments(assigns)
        go = self._pair_targets(go_pairs, gts, metas, num_queries)
        balance = self.loss_ddf.balance_weights(go.pos_mask(cls.shape[1:3]))

        losses = {}
        for i in range(num_layers):
            own = self._pair_targets(assigns[i], gts, metas, num_queries)
            layer = self._output_losses(cls[i], boxes[i], own, num_boxes, go,
                                        num_boxes_go)
            teacher = (corners[-1], cls[-1]) if i < num_layers - 1 else None
            layer.update(
                self._local_losses(corners[i], boxes[i], refs, go,
                                   num_boxes_go, teacher, balance))
            losses.update(self._layer_names(layer, i, num_layers))
        for prefix, (c, b), pairs in (('pre_', outputs[-2], assigns[-2]),
                                      ('enc_', outputs[-1], assigns[-1])):
            own = self._pair_targets(pairs, gts, metas, c.shape[1])
            layer = self._output_losses(c, b, own, num_boxes, go, num_boxes_go)
            losses.update({prefix + k: v for k, v in layer.items()})

        if dn_meta is not None:
            losses.update(
                self._denoising_losses(dn_cls, dn_boxes, dn_corners, dn_refs,
                                       dn_pre_cls, dn_pre_boxes, gts, metas,
                                       dn_meta, num_boxes, balance))
        return losses

    def _denoising_losses(self, cls: Tensor, boxes: Tensor, corners: Tensor,
                          refs: Tensor, pre_cls: Tensor, pre_boxes: Tensor,
                          batch_gt_instances: InstanceList,
                          batch_img_metas: List[dict], dn_meta: Dict[str, int],
                          num_boxes: float, balance: TensorPair) -> dict:
        """Losses of the denoising queries (``Nd`` of them): every layer
        (VFL, L1, GIoU, FGL, DDF but the last's) and ``pre`` (VFL, L1,
        GIoU), all with the denoising matching (mmdet's
        :meth:`get_dn_targets`, D-FINE's ``get_cdn_matched_indices``).

        Args:
            cls (Tensor): (L, B, Nd, num_classes); boxes (L, B, Nd, 4),
                corners (L, B, Nd, 4 * (reg_max + 1)), refs (B, Nd, 4),
                pre_cls (B, Nd, num_classes), pre_boxes (B, Nd, 4).
            num_boxes (float): Normaliser of the matching part, times
                ``num_denoising_groups`` here.
            balance (tuple[Tensor]): DDF's pos/neg mixing weights of the
                matching queries.

        Returns:
            dict[str, Tensor]: ``dn_loss_*``, ``d{i}.dn_loss_*``,
            ``pre_dn_loss_*``.
        """
        targets = self._dn_targets(batch_gt_instances, batch_img_metas,
                                   dn_meta)
        avg_factor = num_boxes * dn_meta['num_denoising_groups']
        num_layers, losses = cls.shape[0], {}
        for i in range(num_layers):
            layer = self._output_losses(cls[i], boxes[i], targets, avg_factor,
                                        targets, avg_factor)
            teacher = (corners[-1], cls[-1]) if i < num_layers - 1 else None
            layer.update(
                self._local_losses(corners[i], boxes[i], refs, targets,
                                   avg_factor, teacher, balance))
            losses.update(self._layer_names(layer, i, num_layers, 'dn_'))
        layer = self._output_losses(pre_cls, pre_boxes, targets, avg_factor,
                                    targets, avg_factor)
        losses.update({f'pre_dn_{k}': v for k, v in layer.items()})
        return losses

    def _output_losses(self, cls_scores: Tensor, bbox_preds: Tensor,
                       cls_targets: MatchTargets, num_boxes: float,
                       box_targets: MatchTargets,
                       num_boxes_go: float) -> Dict[str, Tensor]:
        """VFL under ``cls_targets``, L1 and GIoU under ``box_targets``.

        Args:
            cls_scores (Tensor): (B, N, num_classes) logits.
            bbox_preds (Tensor): (B, N, 4) boxes (cx, cy, w, h) in [0, 1].
            cls_targets (MatchTargets): The output's own matching.
            num_boxes (float): VFL normaliser.
            box_targets (MatchTargets): The GO-LSD union (or denoising)
                matching.
            num_boxes_go (float): L1/GIoU normaliser.

        Returns:
            dict[str, Tensor]: ``loss_cls``, ``loss_bbox``, ``loss_iou``.
        """
        flat_boxes = bbox_preds.flatten(0, 1)  # (B * N, 4)
        # VFL's IoU-aware target: the IoU of each matched box, 0 elsewhere
        scores = flat_boxes.new_zeros(flat_boxes.shape[0])
        pos = cls_targets.pos_inds
        scores[pos] = self._ious(flat_boxes[pos], cls_targets)
        loss_cls = self.loss_cls(
            cls_scores.flatten(0, 1), (cls_targets.labels, scores),
            avg_factor=num_boxes)

        pred = flat_boxes[box_targets.pos_inds]  # (M, 4)
        loss_bbox = self.loss_bbox(
            pred, box_targets.bbox_targets, avg_factor=num_boxes_go)
        # GIoU in pixels, as RTDETRHead (invariant to the image's aspect)
        loss_iou = self.loss_iou(
            self._to_xyxy(pred) * box_targets.factors,
            bbox_cxcywh_to_xyxy(box_targets.bbox_targets) *
            box_targets.factors,
            avg_factor=num_boxes_go)
        return dict(loss_cls=loss_cls, loss_bbox=loss_bbox, loss_iou=loss_iou)

    def _local_losses(
            self,
            pred_corners: Tensor,
            bbox_preds: Tensor,
            ref_points: Tensor,
            targets: MatchTargets,
            num_boxes_go: float,
            teacher: Optional[TensorPair] = None,
            balance: Optional[TensorPair] = None) -> Dict[str, Tensor]:
        """FGL of one decoder layer, and DDF if it has a teacher.

        Args:
            pred_corners (Tensor): (B, N, 4 * (reg_max + 1)) bin logits.
            bbox_preds (Tensor): (B, N, 4) their boxes (cx, cy, w, h); the
                IoU of a matched box with its GT weights its FGL and DDF.
            ref_points (Tensor): (B, N, 4) the fixed reference boxes.
            targets (MatchTargets): The union (or denoising) matching.
            num_boxes_go (float): FGL normaliser.
            teacher (tuple[Tensor], optional): Corners (B, N, 4 * (reg_max
                + 1)) and logits (B, N, num_classes) of the last layer.
            balance (tuple[Tensor], optional): DDF's pos/neg mixing weights
                (default: those of this matching).

        Returns:
            dict[str, Tensor]: ``loss_fgl`` (and ``loss_ddf``).
        """
        pos = targets.pos_inds
        ious = self._ious(bbox_preds.flatten(0, 1)[pos], targets)  # (M, )
        _, *bins = bbox2distance(
            ref_points.flatten(0, 1)[pos].detach(),
            bbox_cxcywh_to_xyxy(targets.bbox_targets), self.project,
            self.reg_scale)  # each (M, 4)
        losses = dict(
            loss_fgl=self.loss_fgl(
                pred_corners.flatten(0, 1)[pos],
                tuple(bins),
                weight=ious,
                avg_factor=num_boxes_go))
        if teacher is not None:
            shape = bbox_preds.shape[:2]
            pos_mask = targets.pos_mask(shape)  # (B, N)
            iou_map = ious.new_zeros(shape).flatten()
            iou_map[pos] = ious
            teacher_corners, teacher_logits = teacher
            losses['loss_ddf'] = self.loss_ddf(
                pred_corners, teacher_corners,
                ddf_weight(teacher_logits, pos_mask, iou_map.view(shape)),
                pos_mask, balance)
        return losses

    def _assign(self, cls_scores: Tensor, bbox_preds: Tensor,
                batch_gt_instances: InstanceList,
                batch_img_metas: List[dict]) -> List[TensorPair]:
        """Hungarian matching (``self.assigner``) of one output, image by
        image, as ``DETRHead._get_targets_single`` runs it.

        Args:
            cls_scores (Tensor): (B, N, num_classes) logits.
            bbox_preds (Tensor): (B, N, 4) boxes (cx, cy, w, h) in [0, 1].

        Returns:
            list[tuple[Tensor]]: ``(query_inds, gt_inds)`` per image, each
            (K, ) int64 sorted by query.
        """
        pairs = []
        for cls_score, bbox_pred, gt, meta in zip(cls_scores.detach(),
                                                  bbox_preds.detach(),
                                                  batch_gt_instances,
                                                  batch_img_metas):
            factor = self._image_factor(meta, bbox_pred)
            pred = InstanceData(
                scores=cls_score,
                bboxes=bbox_cxcywh_to_xyxy(bbox_pred) * factor)
            result = self.assigner.assign(
                pred_instances=pred, gt_instances=gt, img_meta=meta)
            query_inds = torch.nonzero(result.gt_inds > 0).squeeze(-1)
            pairs.append((query_inds, result.gt_inds[query_inds] - 1))
        return pairs

    def _pair_targets(self, pairs: List[TensorPair],
                      batch_gt_instances: InstanceList,
                      batch_img_metas: List[dict],
                      num_queries: int) -> MatchTargets:
        """Targets of ``B x num_queries`` queries under a matching.

        Args:
            pairs (list[tuple[Tensor]]): ``(query_inds, gt_inds)`` per
                image, each (K, ).

        Returns:
            MatchTargets: labels of all queries, GT boxes of the matched.
        """
        labels, pos_inds, bbox_targets, factors = [], [], [], []
        for img, ((query_inds, gt_inds), gt, meta) in enumerate(
                zip(pairs, batch_gt_instances, batch_img_metas)):
            factor = self._image_factor(meta, gt.bboxes)  # (1, 4)
            img_labels = gt.labels.new_full((num_queries, ), self.num_classes)
            img_labels[query_inds] = gt.labels[gt_inds]
            labels.append(img_labels)
            pos_inds.append(query_inds + img * num_queries)
            bbox_targets.append(
                bbox_xyxy_to_cxcywh(gt.bboxes[gt_inds] / factor))
            factors.append(factor.expand(len(gt_inds), 4))
        return MatchTargets(
            torch.cat(labels), torch.cat(pos_inds), torch.cat(bbox_targets),
            torch.cat(factors))

    def _dn_targets(self, batch_gt_instances: InstanceList,
                    batch_img_metas: List[dict],
                    dn_meta: Dict[str, int]) -> MatchTargets:
        """Targets of the denoising queries: :class:`DINOHead`'s
        :meth:`get_dn_targets` (positive j of group g, query ``g * 2 *
        max_gt + j``, -> GT j; D-FINE's ``get_cdn_matched_indices``)."""
        labels, _, bbox_targets, bbox_weights, _, _ = self.get_dn_targets(
            batch_gt_instances, batch_img_metas, dn_meta)
        num_dn = dn_meta['num_denoising_queries']
        factors = torch.cat([
            self._image_factor(meta, gt.bboxes).expand(num_dn, 4)
            for gt, meta in zip(batch_gt_instances, batch_img_metas)
        ])
        pos_inds = torch.nonzero(torch.cat(bbox_weights)[:, 0] > 0).squeeze(-1)
        return MatchTargets(
            torch.cat(labels), pos_inds,
            torch.cat(bbox_targets)[pos_inds], factors[pos_inds])

    def _num_boxes(self, batch_gt_instances: InstanceList,
                   like: Tensor) -> float:
        """Number of GT boxes (averaged over GPUs with
        ``sync_cls_avg_factor``), at least 1: D-FINE's ``num_boxes``."""
        num = like.new_tensor(
            [float(sum(len(gt) for gt in batch_gt_instances))])
        if self.sync_cls_avg_factor:
            num = reduce_mean(num)
        return num.clamp(min=1).item()

    def _ious(self, pred: Tensor, targets: MatchTargets) -> Tensor:
        """Detached IoU (M, ) of matched boxes (M, 4) (cx, cy, w, h) with
        their GT, in pixels."""
        return bbox_overlaps(
            self._to_xyxy(pred.detach()) * targets.factors,
            bbox_cxcywh_to_xyxy(targets.bbox_targets) * targets.factors,
            is_aligned=True)

    @staticmethod
    def _to_xyxy(boxes: Tensor) -> Tensor:
        """(..., 4) (cx, cy, w, h) -> (x1, y1, x2, y2) with w, h clamped at
        0, as D-FINE's ``box_cxcywh_to_xyxy`` (FDR can predict a negative
        size; mmdet's conversion would give an inverted box)."""
        return bbox_cxcywh_to_xyxy(
            torch.cat([boxes[..., :2], boxes[..., 2:].clamp(min=0)], -1))

    @staticmethod
    def _image_factor(img_meta: dict, like: Tensor) -> Tensor:
        """(1, 4) ``(w, h, w, h)`` of the image: pixels <-> [0, 1]."""
        img_h, img_w = img_meta['img_shape']
        return like.new_tensor([[img_w, img_h, img_w, img_h]])

    @staticmethod
    def _layer_names(losses: Dict[str, Tensor],
                     layer: int,
                     num_layers: int,
                     prefix: str = '') -> Dict[str, Tensor]:
        """mmdet's names: ``{prefix}loss_x`` for the last layer,
        ``d{layer}.{prefix}loss_x`` for the others."""
        head = '' if layer == num_layers - 1 else f'd{layer}.'
        return {f'{head}{prefix}{k}': v for k, v in losses.items()}

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
