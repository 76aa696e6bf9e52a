import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
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


def test_loss_hands_over_every_output_then_says_not_implemented():
    h = head()
    out = outputs()
    dn_meta = dict(num_denoising_queries=2, num_denoising_groups=1)
    enc_cls, enc_box = torch.randn(2, NQ - 2, 3), torch.rand(2, NQ - 2, 4)
    with pytest.raises(NotImplementedError, match='no training losses'):
        h.loss(
            **out,
            enc_outputs_class=enc_cls,
            enc_outputs_coord=enc_box,
            batch_data_samples=samples(),
            dn_meta=dn_meta)
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
