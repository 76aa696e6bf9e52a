import pytest
import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.structures import InstanceData

import rtdetr_mm  # noqa: F401
from rtdetr_mm.testing import trained_like
from ..._utils import CONFIG_DIR

DIM = 32
# R18vd layout at a tiny width: base 8 channels, hidden 32, 2 decoder layers
TINY = dict(
    data_preprocessor=dict(batch_augments=None),
    # a tiny width no released weights fit: from scratch
    backbone=dict(base_channels=8, stem_channels=8, init_cfg=None),
    neck=dict(
        in_channels=[16, 32, 64],
        hidden_dim=DIM,
        depth_mult=0.34,
        encoder_layer=dict(
            self_attn_cfg=dict(num_heads=4),
            ffn_cfg=dict(feedforward_channels=64))),
    decoder=dict(
        num_layers=2,
        layer_cfg=dict(
            self_attn_cfg=dict(embed_dims=DIM, num_heads=4),
            cross_attn_cfg=dict(embed_dims=DIM, num_heads=4, num_points=2),
            ffn_cfg=dict(embed_dims=DIM, feedforward_channels=64))),
    bbox_head=dict(num_classes=4, embed_dims=DIM),
    num_queries=20,
    dn_cfg=dict(group_cfg=dict(num_dn_queries=8)),
    test_cfg=dict(max_per_img=15))


def tiny_cfg(**overrides):
    cfg = Config.fromfile(CONFIG_DIR / 'rtdetr_r18vd_coco.py')
    cfg.merge_from_dict(dict(model=TINY))
    if overrides:
        cfg.merge_from_dict(dict(model=overrides))
    return cfg.model


def build(**overrides):
    init_default_scope('mmdet')
    torch.manual_seed(0)
    model = MODELS.build(tiny_cfg(**overrides))
    model.init_weights()
    return model


def make_batch(model, sizes, num_boxes, training):
    data = dict(inputs=[], data_samples=[])
    for (h, w), n in zip(sizes, num_boxes):
        data['inputs'].append(
            torch.randint(0, 256, (3, h, w), dtype=torch.uint8))
        s = DetDataSample(
            metainfo=dict(
                img_shape=(h, w), ori_shape=(h, w), scale_factor=(1.0, 1.0)))
        xy = torch.rand(n, 2) * torch.tensor([w / 2, h / 2])
        s.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + 8 + torch.rand(n, 2) * 30], 1),
            labels=torch.randint(0, 4, (n, )))
        data['data_samples'].append(s)
    data = model.data_preprocessor(data, training)
    return data['inputs'], data['data_samples']


@pytest.mark.parametrize('dn', [True, False])
def test_loss_step_finite_with_gradients(dn):
    model = build(**({} if dn else dict(dn_cfg=None))).train()
    batch = make_batch(model, [(96, 128), (96, 128)], [3, 1], True)
    losses = model.loss(*batch)
    assert ('dn_loss_cls' in losses) == dn
    assert 'enc_loss_iou' in losses and 'd0.loss_cls' in losses
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    no_grad = [
        n for n, p in model.named_parameters()
        if p.requires_grad and p.grad is None
    ]
    assert not no_grad, no_grad
    assert all(
        torch.isfinite(p.grad).all() for p in model.parameters()
        if p.grad is not None)


def test_loss_with_images_without_boxes():
    model = build().train()
    batch = make_batch(model, [(96, 128), (96, 128)], [0, 0], True)
    losses = model.loss(*batch)
    total = sum(v for k, v in losses.items() if 'loss' in k)
    assert torch.isfinite(total)
    total.backward()
    batch = make_batch(model, [(96, 128), (96, 128)], [2, 0], True)
    assert torch.isfinite(sum(model.loss(*batch).values()))


def test_predict_different_sizes_and_eval_idx():
    model = build(decoder=dict(eval_idx=0)).eval()
    batch = make_batch(model, [(96, 128), (64, 96)], [1, 1], False)
    with torch.no_grad():
        results = model.predict(*batch)
        hidden = model.forward_transformer(
            model.extract_feat(batch[0]), batch[1])['hidden_states']
    assert hidden.shape[0] == 1  # stopped after layer eval_idx=0
    assert batch[0].shape[-2:] == (96, 128)  # padded to /32
    for res, (h, w) in zip(results, [(96, 128), (64, 96)]):
        pred = res.pred_instances
        assert pred.bboxes.shape == (15, 4)
        assert torch.all(pred.bboxes[:, 2] <= w) and \
            torch.all(pred.bboxes[:, 3] <= h)
        assert torch.all((pred.scores >= 0) & (pred.scores <= 1))


def test_switch_to_deploy_equivalence():
    model = build()
    batch = make_batch(model, [(96, 128)], [1], False)

    def outputs():
        feats = model.extract_feat(batch[0])
        return model.bbox_head(**model.forward_transformer(feats))

    trained_like(model, outputs)
    with torch.no_grad():
        ref = outputs()
        model.switch_to_deploy()
        model.switch_to_deploy()
        out = outputs()
    assert torch.allclose(ref[0], out[0], atol=1e-4)
    assert torch.allclose(ref[1], out[1], atol=1e-5)
    assert any('bottlenecks.0.conv.weight' in k for k in model.state_dict())


def test_bad_config():
    with pytest.raises(KeyError, match='NoSuchBackbone'):
        build(backbone=dict(type='NoSuchBackbone'))
    model = build(neck=dict(in_channels=[16, 32, 128])).eval()
    batch = make_batch(model, [(96, 128)], [1], False)
    with pytest.raises(ValueError, match='neck.in_channels'):
        model.predict(*batch)
    with pytest.raises(ValueError, match='dn_cfg must not set'):
        build(dn_cfg=dict(num_classes=3))
