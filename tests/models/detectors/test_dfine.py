"""DFINE detector at a tiny size: build, predict, deploy, export wrapper."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from rtdetr_mm.deploy.end2end import End2EndDetector
from rtdetr_mm.models.layers import RTDETRCdnQueryGenerator
from rtdetr_mm.testing import trained_like
from ..._utils import CONFIG_DIR
from .test_rtdetr import DIM, TINY, make_batch

# the tiny R18vd RT-DETR with D-FINE's decoder and head
DFINE_TINY = dict(
    type='DFINE',
    decoder=dict(layer_cfg=dict(cross_attn_cfg=dict(num_points=[2, 4, 2]))),
    bbox_head=dict(type='DFINEHead', reg_max=8, reg_scale=4.0))


def build(**overrides):
    """The tiny model; ``overrides`` are dotted keys below ``model``."""
    init_default_scope('mmdet')
    torch.manual_seed(0)
    cfg = Config.fromfile(CONFIG_DIR / 'rtdetr_r18vd_coco.py')
    cfg.merge_from_dict(dict(model=TINY))
    cfg.merge_from_dict(dict(model=DFINE_TINY))
    cfg.merge_from_dict({f'model.{k}': v for k, v in overrides.items()})
    model = MODELS.build(cfg.model)
    model.init_weights()
    return model


def outputs(model, inputs):
    return model.bbox_head(
        **model.forward_transformer(model.extract_feat(inputs)))


def test_layout_and_input_proj():
    model = build()
    assert type(model.decoder).__name__ == 'DFINETransformerDecoder'
    assert model.decoder.layers[0].cross_attn.num_points == [2, 4, 2]
    # neck channels == hidden: no projection (D-FINE-S/M/L/N)
    assert all(isinstance(p, nn.Identity) for p in model.input_proj)
    assert not any(k.startswith('input_proj') for k in model.state_dict())
    # neck wider than the decoder: 1x1 conv + BN (D-FINE-X)
    wide = build(**{'neck.hidden_dim': 48})
    assert [p.conv.in_channels for p in wide.input_proj] == [48] * 3
    assert 'input_proj.0.bn.running_var' in wide.state_dict()


def test_predict_eval_idx_and_training_outputs():
    model = build(**{'decoder.eval_idx': 0}).eval()
    batch = make_batch(model, [(96, 128), (64, 96)], [1, 1], False)
    with torch.no_grad():
        results = model.predict(*batch)
        out = model.forward_transformer(model.extract_feat(batch[0]))
    assert out['hidden_states'].shape[0] == 1  # stopped after layer 0
    for res, (h, w) in zip(results, [(96, 128), (64, 96)]):
        pred = res.pred_instances
        assert pred.bboxes.shape == (15, 4)
        assert torch.all(pred.bboxes[:, 2] <= w)
        assert torch.all((pred.scores >= 0) & (pred.scores <= 1))

    model.train()
    batch = make_batch(model, [(96, 128), (96, 128)], [3, 1], True)
    out = model.forward_transformer(model.extract_feat(batch[0]), batch[1])
    num_dn = out['dn_meta']['num_denoising_queries']
    assert out['pred_corners'].shape == (2, 2, num_dn + 20, 4 * 9)
    assert out['enc_outputs_class'].shape == (2, 20, 4)
    assert 'dn_loss_fgl' in model.loss(*batch)


def test_switch_to_deploy_and_export_wrapper_keep_outputs():
    model = build()
    batch = make_batch(model, [(96, 128)], [1], False)
    with torch.no_grad():  # spread the zero-initialised branches
        for branch in model.bbox_head.reg_branches:
            branch[-1].weight.normal_(0, 0.05)
    trained_like(model, lambda: outputs(model, batch[0]))
    with torch.no_grad():
        ref = outputs(model, batch[0])
        results = model.predict(*batch)[0].pred_instances
        model.switch_to_deploy()
        model.switch_to_deploy()
        out = outputs(model, batch[0])
        labels, boxes, scores = End2EndDetector(model)(batch[0] * 255,
                                                       torch.tensor([[96,
                                                                      128]]))
    torch.testing.assert_close(out[0], ref[0], rtol=0, atol=1e-4)
    torch.testing.assert_close(out[1], ref[1], rtol=0, atol=1e-5)
    assert ref[0][-1].sigmoid().std() > 0.01  # scores spread
    torch.testing.assert_close(scores[0], results.scores, atol=1e-4, rtol=0)
    torch.testing.assert_close(boxes[0], results.bboxes, atol=1e-2, rtol=0)


def spread_distributions(model):
    """Randomise the zero-initialised box branches (at init every layer
    predicts the same corners, DDF is 0, and no box term reaches the
    decoder through their zero last layers)."""
    head = model.bbox_head
    with torch.no_grad():
        for branch in list(head.reg_branches) + [head.pre_reg_branch]:
            branch[-1].weight.normal_(0, 0.2)


@pytest.mark.parametrize('dn', [True, False])
def test_loss_terms_finite_with_gradient_paths(dn):
    model = build(**({} if dn else dict(dn_cfg=None))).train()
    spread_distributions(model)
    # the second image has no ground truth
    batch = make_batch(model, [(64, 64), (64, 64)], [3, 0], True)
    losses = model.loss(*batch)
    per_layer = ['loss_cls', 'loss_bbox', 'loss_iou', 'loss_fgl']
    expected = set(per_layer) | {f'd0.{k}' for k in per_layer + ['loss_ddf']}
    expected |= {f'{p}{k}' for p in ('pre_', 'enc_') for k in per_layer[:3]}
    if dn:
        expected |= {f'dn_{k}' for k in per_layer}
        expected |= {f'd0.dn_{k}' for k in per_layer + ['loss_ddf']}
        expected |= {f'pre_dn_{k}' for k in per_layer[:3]}
    assert set(losses) == expected
    decoder = [p for p in model.decoder.parameters() if p.requires_grad]
    encoder_side = list(model.memory_trans_fc.parameters())
    for name, value in losses.items():
        assert torch.isfinite(value) and value > 0, name
        # decoder outputs train the decoder; the encoder proposals the
        # memory projection (their queries are detached)
        params = encoder_side if name.startswith('enc_') else decoder
        grads = torch.autograd.grad(
            value, params, retain_graph=True, allow_unused=True)
        assert any(g is not None and g.abs().sum() > 0 for g in grads), name


def test_loss_without_any_ground_truth():
    model = build().train()
    batch = make_batch(model, [(64, 64), (64, 64)], [0, 0], True)
    losses = model.loss(*batch)
    assert all(torch.isfinite(v) for v in losses.values())
    assert losses['loss_bbox'] == 0 and losses['loss_cls'] > 0
    sum(losses.values()).backward()


def test_dfine_box_noise_keeps_inverted_sizes():
    """abs_box_size (D-FINE's denoising): mmdet's noise, but a negative
    query whose corners crossed keeps |size| instead of a 0-size sliver."""
    cfg = dict(
        num_classes=4,
        embed_dims=8,
        num_matching_queries=5,
        group_cfg=dict(dynamic=True, num_dn_queries=400))
    rtdetr = RTDETRCdnQueryGenerator(**cfg)
    dfine = RTDETRCdnQueryGenerator(**cfg, abs_box_size=True)
    gt = torch.tensor([[0.2, 0.3, 0.5, 0.7], [0.1, 0.1, 0.3, 0.2]])
    torch.manual_seed(0)
    ref = rtdetr.generate_dn_bbox_query(gt, 200).sigmoid()
    torch.manual_seed(0)
    out = dfine.generate_dn_bbox_query(gt, 200).sigmoid()
    # rows: [positives, negatives] x 200 groups, 2 targets each
    negative = torch.arange(800) // 2 % 2 == 1
    sliver = (ref[:, 2:] < 2e-3).any(-1)
    assert not sliver[~negative].any()
    assert 0.2 < sliver[negative].float().mean() < 0.7  # ~44% crossed
    # equal elsewhere and same centres, up to the eps of inverse_sigmoid
    # (D-FINE 1e-5, mmdet 1e-3: boxes spanning the image differ)
    torch.testing.assert_close(out[~sliver], ref[~sliver], atol=1e-3, rtol=0)
    torch.testing.assert_close(out[:, :2], ref[:, :2], atol=1e-3, rtol=0)
    assert (out[sliver][:, 2:] > ref[sliver][:, 2:]).any(-1).all()


def test_bad_config():
    with pytest.raises(ValueError, match='num_levels=3 positive ints'):
        build(**{'decoder.layer_cfg.cross_attn_cfg.num_points': [2, 4]})
    with pytest.raises(ValueError, match='reg_max must be an even int'):
        build(**{'bbox_head.reg_max': 9})
    with pytest.raises(ValueError, match=r'eval_idx must be in \[-2, 1\]'):
        build(**{'decoder.eval_idx': 2})
    assert DIM == build().embed_dims
