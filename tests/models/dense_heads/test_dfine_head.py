import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmdet.structures.bbox import bbox_xyxy_to_cxcywh
from mmengine.structures import InstanceData

from rtdetr_mm.models.dense_heads import DFINEHead
from rtdetr_mm.models.layers import weighting_function

NUM_CLASSES, DIM, NQ, REG_MAX = 3, 16, 6, 8


def head(num_layers=2, **kwargs):
    cfg = dict(
        type='DFINEHead',
        num_classes=NUM_CLASSES,
        embed_dims=DIM,
        num_pred_layer=num_layers + 1,
        as_two_stage=True,
        reg_max=REG_MAX,
        reg_scale=8.0,
        test_cfg=dict(max_per_img=5))
    h = MODELS.build(dict(cfg, **kwargs))
    h.init_weights()
    return h


def outputs(num_layers=2, bs=2):
    return dict(
        hidden_states=torch.randn(num_layers, bs, NQ, DIM),
        pred_corners=torch.randn(num_layers, bs, NQ, 4 * (REG_MAX + 1)),
        pred_bboxes=torch.rand(num_layers, bs, NQ, 4) * 0.5 + 0.25,
        ref_points=torch.rand(bs, NQ, 4) * 0.5 + 0.25,
        pre_bboxes=torch.rand(bs, NQ, 4))


def samples(n=2):
    out = []
    for _ in range(n):
        s = DetDataSample(
            metainfo=dict(img_shape=(64, 80), scale_factor=(2.0, 0.5)))
        s.gt_instances = InstanceData(
            bboxes=torch.tensor([[1., 2., 30., 40.]]),
            labels=torch.tensor([1]))
        out.append(s)
    return out


def test_branches_and_init():
    h = head()
    assert len(h.cls_branches) == 3 and len(h.lqe_layers) == 2
    assert [b[-1].out_features for b in h.reg_branches] == [36, 36, 4]
    assert h.pre_reg_branch[-1].out_features == 4
    for branch in list(h.reg_branches) + [h.pre_reg_branch]:
        assert branch[-1].weight.abs().max() == 0
    for lqe in h.lqe_layers:
        assert lqe.mlp.layers[-1].weight.abs().max() == 0
    assert torch.allclose(
        h.cls_branches[2].bias,
        torch.full((NUM_CLASSES, ), -4.59512),
        atol=1e-4)
    torch.testing.assert_close(h.project,
                               weighting_function(REG_MAX, 0.5, 8.0))
    assert 'project' not in h.state_dict()


def test_forward_adds_quality_and_decodes_against_reference():
    h = head()
    for lqe in h.lqe_layers:
        torch.nn.init.normal_(lqe.mlp.layers[-1].weight)
    out = outputs()
    cls, boxes = h(**out)
    assert cls.shape == (2, 2, NQ, NUM_CLASSES)
    assert boxes is out['pred_bboxes']
    expected = h.lqe_layers[1](h.cls_branches[1](out['hidden_states'][1]),
                               out['pred_corners'][1])
    torch.testing.assert_close(cls[1], expected)
    assert not torch.allclose(cls[1], h.cls_branches[1](
        out['hidden_states'][1]))
    zero = torch.zeros(2, NQ, 4 * (REG_MAX + 1))
    torch.testing.assert_close(
        h.decode_corners(out['ref_points'], zero), out['ref_points'])


def test_predict_topk_and_rescale():
    h = head().eval()
    results = h.predict(**outputs(), batch_data_samples=samples())
    res = results[0]
    assert res.bboxes.shape == (5, 4) and res.scores.shape == (5, )
    assert torch.all(res.scores[:-1] >= res.scores[1:])
    assert res.labels.max() < NUM_CLASSES
    assert res.bboxes[:, 0::2].max() <= 40 + 1e-4  # 80 px / 2.0
    assert res.bboxes[:, 1::2].max() <= 128 + 1e-4  # 64 px / 0.5


def test_loss_hands_over_every_output():
    h = head()
    out = outputs()
    dn_meta = dict(num_denoising_queries=2, num_denoising_groups=1)
    enc_cls, enc_box = torch.randn(2, NQ - 2, 3), torch.rand(2, NQ - 2, 4)
    captured = {}
    h.loss_by_feat = lambda **kwargs: captured.update(kwargs) or {}
    h.loss(
        **out,
        enc_outputs_class=enc_cls,
        enc_outputs_coord=enc_box,
        batch_data_samples=samples(),
        dn_meta=dn_meta)
    assert captured['all_layers_cls_scores'].shape == (2, 2, NQ, 3)
    assert captured['all_layers_bbox_preds'] is out['pred_bboxes']
    assert captured['all_layers_pred_corners'] is out['pred_corners']
    assert captured['ref_points'] is out['ref_points']
    assert captured['pre_bbox_preds'] is out['pre_bboxes']
    torch.testing.assert_close(captured['pre_cls_scores'],
                               h.cls_branches[0](out['hidden_states'][0]))
    assert captured['enc_cls_scores'] is enc_cls
    assert captured['dn_meta'] is dn_meta
    assert len(captured['batch_gt_instances']) == 2
    match, dn = h.split_queries(captured['all_layers_pred_corners'], dn_meta,
                                2)
    assert match.shape[2] == NQ - 2 and dn.shape[2] == 2
    assert h.split_queries(out['pre_bboxes'], None, 1)[1] is None


# ---- losses: loss_by_feat on hand-made outputs (image 64 x 80)
IMG_H, IMG_W = 64, 80
FACTOR = torch.tensor([IMG_W, IMG_H, IMG_W, IMG_H], dtype=torch.float)


def ground_truth(num_gts, gen):
    """InstanceData (pixel xyxy boxes, labels) and metas per image."""
    gts = []
    for n in num_gts:
        xy = torch.rand(n, 2, generator=gen) * torch.tensor([40., 30.])
        wh = 8 + torch.rand(n, 2, generator=gen) * 24
        gts.append(
            InstanceData(
                bboxes=torch.cat([xy, xy + wh], 1),
                labels=torch.randint(0, NUM_CLASSES, (n, ), generator=gen)))
    return gts, [dict(img_shape=(IMG_H, IMG_W))] * len(num_gts)


def rand_boxes(*shape, gen):
    """(..., 4) (cx, cy, w, h) with positive sizes."""
    return torch.cat([
        torch.rand(*shape, 2, generator=gen) * 0.6 + 0.2,
        torch.rand(*shape, 2, generator=gen) * 0.4 + 0.1
    ], -1)


def loss_inputs(num_gts=(2, 1), num_dn=0, num_layers=2, seed=0):
    """loss_by_feat's arguments; ``Nq = num_dn + NQ``."""
    gen = torch.Generator().manual_seed(seed)
    bs, nq, num_bins = len(num_gts), num_dn + NQ, 4 * (REG_MAX + 1)
    gts, metas = ground_truth(num_gts, gen)
    return dict(
        all_layers_cls_scores=torch.randn(
            num_layers, bs, nq, NUM_CLASSES, generator=gen) * 2,
        all_layers_bbox_preds=rand_boxes(num_layers, bs, nq, gen=gen),
        all_layers_pred_corners=torch.randn(
            num_layers, bs, nq, num_bins, generator=gen) * 2,
        ref_points=rand_boxes(bs, nq, gen=gen),
        pre_cls_scores=torch.randn(bs, nq, NUM_CLASSES, generator=gen) * 2,
        pre_bbox_preds=rand_boxes(bs, nq, gen=gen),
        enc_cls_scores=torch.randn(bs, NQ, NUM_CLASSES, generator=gen) * 2,
        enc_bbox_preds=rand_boxes(bs, NQ, gen=gen),
        batch_gt_instances=gts,
        batch_img_metas=metas)


def loss_keys(num_layers, dn):
    """The loss names for ``num_layers`` layers (D-FINE's criterion)."""
    box = ['loss_cls', 'loss_bbox', 'loss_iou']
    keys = {f'{p}{k}' for p in ('', 'pre_', 'enc_') for k in box}
    keys.add('loss_fgl')
    for i in range(num_layers - 1):
        keys |= {f'd{i}.{k}' for k in box + ['loss_fgl', 'loss_ddf']}
    if dn:
        keys |= {f'{p}dn_{k}' for p in ('', 'pre_') for k in box}
        keys.add('dn_loss_fgl')
        for i in range(num_layers - 1):
            keys |= {f'd{i}.dn_{k}' for k in box + ['loss_fgl', 'loss_ddf']}
    return keys


@pytest.mark.parametrize('num_dn', [0, 8])
def test_loss_names_finite_and_no_ddf_for_the_teacher(num_dn):
    h = head(num_layers=3)
    args = loss_inputs(num_dn=num_dn, num_layers=3)
    dn_meta = dict(num_denoising_queries=8, num_denoising_groups=2)
    losses = h.loss_by_feat(**args, dn_meta=dn_meta if num_dn else None)
    assert set(losses) == loss_keys(3, num_dn > 0)
    assert 'loss_ddf' not in losses and 'dn_loss_ddf' not in losses
    for name, value in losses.items():
        assert value.dim() == 0 and torch.isfinite(value), name
        # random outputs; FGL is 0 when no matched box overlaps its GT
        assert value > 0 or 'fgl' in name, name


def test_identical_outputs_equal_rtdetr_machinery():
    """All outputs alike: the union is each output's own matching, so the
    VFL/L1/GIoU terms are DETRHead's loss_by_feat_single (own Hungarian
    matching, normalised by the matched count) and the denoising ones
    DINOHead's _loss_dn_single."""
    h = head(num_layers=2)
    args = loss_inputs(num_gts=(2, 3), num_dn=12)
    for key, dim in (('cls_scores', -1), ('bbox_preds', -1)):
        layers = args[f'all_layers_{key}']
        layers[1] = layers[0]
        args[f'pre_{key}'] = layers[0].clone()
        args[f'enc_{key}'] = layers[0][:, 12:].clone()
    dn_meta = dict(num_denoising_queries=12, num_denoising_groups=2)
    losses = h.loss_by_feat(**args, dn_meta=dn_meta)
    gts, metas = args['batch_gt_instances'], args['batch_img_metas']
    cls, boxes = args['pre_cls_scores'], args['pre_bbox_preds']
    match = h.loss_by_feat_single(cls[:, 12:], boxes[:, 12:], gts, metas)
    dn = h._loss_dn_single(cls[:, :12], boxes[:, :12], gts, metas, dn_meta)
    for prefix, expected in (('', match), ('d0.', match), ('pre_', match),
                             ('enc_', match), ('dn_', dn), ('d0.dn_', dn),
                             ('pre_dn_', dn)):
        for name, value in zip(('loss_cls', 'loss_bbox', 'loss_iou'),
                               expected):
            torch.testing.assert_close(
                losses[prefix + name], value.reshape(()), msg=prefix + name)
    # the union of identical matchings is that matching (5 pairs)
    own = h._pair_targets(
        h._assign(cls[:, 12:], boxes[:, 12:], gts, metas), gts, metas, NQ)
    fgl = h._local_losses(args['all_layers_pred_corners'][1, :, 12:],
                          boxes[:, 12:], args['ref_points'][:, 12:], own, 5.0)
    torch.testing.assert_close(losses['loss_fgl'], fgl['loss_fgl'])


def test_perfect_prediction_has_zero_box_losses():
    h = head(num_layers=2)
    args = loss_inputs(num_gts=(2, 1))
    gts = args['batch_gt_instances']
    boxes = rand_boxes(2, NQ, gen=torch.Generator().manual_seed(1)) * 0.1
    logits = torch.full((2, NQ, NUM_CLASSES), -12.)
    for img, gt in enumerate(gts):  # query k predicts GT k exactly
        n = len(gt.labels)
        boxes[img, :n] = bbox_xyxy_to_cxcywh(gt.bboxes / FACTOR)
        logits[img, torch.arange(n), gt.labels] = 12.
    args.update(
        all_layers_cls_scores=logits.expand(2, -1, -1, -1),
        all_layers_bbox_preds=boxes.expand(2, -1, -1, -1),
        pre_cls_scores=logits,
        pre_bbox_preds=boxes,
        enc_cls_scores=logits,
        enc_bbox_preds=boxes)
    losses = h.loss_by_feat(**args)
    for prefix in ('', 'd0.', 'pre_', 'enc_'):
        assert losses[prefix + 'loss_bbox'] == 0
        assert abs(losses[prefix + 'loss_iou']) < 1e-6
        assert losses[prefix + 'loss_cls'] < 1e-4  # IoU 1, confident
        # FGL: only the distributions, weighted by IoU 1
    assert losses['loss_fgl'] > 0


def test_images_without_ground_truth():
    h = head(num_layers=2)
    dn_meta = dict(num_denoising_queries=4, num_denoising_groups=2)
    losses = h.loss_by_feat(
        **loss_inputs(num_gts=(0, 1), num_dn=4), dn_meta=dn_meta)
    assert all(torch.isfinite(v) for v in losses.values())
    # no ground truth at all: box terms 0; VFL pushes every score down,
    # DDF distils every (unmatched) query
    dn_meta = dict(num_denoising_queries=0, num_denoising_groups=1)
    args = loss_inputs(num_gts=(0, 0))
    for key, value in list(args.items()):
        if isinstance(value, torch.Tensor):
            args[key] = value.requires_grad_()
    losses = h.loss_by_feat(**args, dn_meta=dn_meta)
    assert set(losses) == loss_keys(2, True)
    for name, value in losses.items():
        assert torch.isfinite(value), name
        if ('loss_cls' not in name and 'ddf' not in name) or 'dn_' in name:
            assert value == 0, name
        else:
            assert value > 0, name
    sum(losses.values()).backward()


def test_nan_is_not_zeroed():
    h = head(num_layers=2)
    args = loss_inputs()
    args['all_layers_pred_corners'][0, :, :, 0] = float('nan')
    losses = h.loss_by_feat(**args)
    assert torch.isnan(losses['d0.loss_fgl'])
    assert torch.isnan(losses['d0.loss_ddf'])
    assert torch.isfinite(losses['loss_fgl'])


def test_inverted_boxes_are_clamped_like_dfine():
    """FDR can predict w < 0: (G)IoUs (the assigner's cost, VFL target,
    GIoU loss, FGL/DDF weight) see a box of width 0 at the same centre."""
    h = head()
    costs = h.assigner.match_costs
    assert [type(c).__name__ for c in costs
            ] == ['FocalLossCost', 'BBoxL1Cost', 'SizeClampedIoUCost']
    gt = InstanceData(
        bboxes=torch.tensor([[10., 10., 30., 30.]]), labels=torch.tensor([0]))
    inverted = torch.tensor([[25., 12., 15., 28.]])  # x2 < x1
    collapsed = torch.tensor([[20., 12., 20., 28.]])
    cost = costs[2](InstanceData(bboxes=inverted), gt)
    torch.testing.assert_close(
        cost, costs[2].cost(InstanceData(bboxes=collapsed), gt))
    assert not torch.allclose(cost, costs[2].cost(
        InstanceData(bboxes=inverted), gt))
    # GIoU loss of a matched inverted box = that of its collapsed box
    args = loss_inputs(num_gts=(1, 1))
    args['all_layers_bbox_preds'][..., 2] = -0.05
    losses = h.loss_by_feat(**args)
    args['all_layers_bbox_preds'][..., 2] = 0.0
    expected = h.loss_by_feat(**args)
    for name in ('loss_iou', 'd0.loss_iou', 'loss_cls', 'loss_fgl'):
        torch.testing.assert_close(losses[name], expected[name])
    assert losses['loss_bbox'] != expected['loss_bbox']  # L1 sees w < 0


def test_bad_arguments():
    with pytest.raises(ValueError, match='reg_max must be an even int'):
        head(reg_max=7)
    with pytest.raises(ValueError, match='share_pred_layer=False'):
        MODELS.build(
            dict(
                type='DFINEHead',
                num_classes=3,
                embed_dims=DIM,
                num_pred_layer=3,
                as_two_stage=True,
                share_pred_layer=True))
    assert DFINEHead.__name__ in MODELS.module_dict
