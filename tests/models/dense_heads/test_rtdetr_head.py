import torch
from mmdet.registry import MODELS
from mmdet.structures import DetDataSample
from mmengine.structures import InstanceData

from rtdetr_mm.models.dense_heads import RTDETRHead  # noqa: F401

NUM_CLASSES, DIM, NQ = 3, 16, 6


def head(num_layers=2, **kwargs):
    return MODELS.build(
        dict(
            type='RTDETRHead',
            num_classes=NUM_CLASSES,
            embed_dims=DIM,
            num_pred_layer=num_layers + 1,
            as_two_stage=True,
            test_cfg=dict(max_per_img=5),
            **kwargs))


def samples(num_boxes=(2, 0)):
    out = []
    for n in num_boxes:
        s = DetDataSample(
            metainfo=dict(img_shape=(64, 80), scale_factor=(2.0, 0.5)))
        xy = torch.rand(n, 2) * 30
        s.gt_instances = InstanceData(
            bboxes=torch.cat([xy, xy + 5 + torch.rand(n, 2) * 20], 1),
            labels=torch.randint(0, NUM_CLASSES, (n, )))
        out.append(s)
    return out


def inputs(num_queries, num_layers=2, bs=2):
    hidden = torch.randn(num_layers, bs, num_queries, DIM, requires_grad=True)
    refs = [
        torch.rand(bs, num_queries, 4) * 0.5 + 0.25
        for _ in range(num_layers + 1)
    ]
    return hidden, refs


def test_init_and_forward_shapes():
    h = head()
    h.init_weights()
    assert len(h.cls_branches) == 3 and len(h.reg_branches) == 3
    assert torch.allclose(
        h.cls_branches[0].bias,
        torch.full((NUM_CLASSES, ), -4.59512),
        atol=1e-4)
    assert torch.all(h.reg_branches[2][-1].bias == 0)
    cls, box = h(*inputs(NQ))
    assert cls.shape == (2, 2, NQ, NUM_CLASSES) and box.shape == (2, 2, NQ, 4)


def test_loss_with_and_without_denoising():
    h = head()
    dn_meta = dict(num_denoising_queries=4, num_denoising_groups=1)
    hidden, refs = inputs(NQ + 4)
    enc_cls = torch.randn(2, NQ, NUM_CLASSES, requires_grad=True)
    enc_box = torch.rand(2, NQ, 4) * 0.5 + 0.25
    losses = h.loss(hidden, refs, enc_cls, enc_box, samples((2, 0)), dn_meta)
    for key in ('loss_cls', 'loss_bbox', 'loss_iou', 'd0.loss_cls',
                'enc_loss_cls', 'enc_loss_iou', 'dn_loss_cls',
                'd0.dn_loss_bbox'):
        assert key in losses, key
    total = sum(losses.values())
    assert torch.isfinite(total)
    total.backward()
    assert torch.isfinite(hidden.grad).all() and hidden.grad.abs().sum() > 0

    hidden, refs = inputs(NQ)
    losses = h.loss(hidden, refs, enc_cls, enc_box, samples((1, 3)), None)
    assert not any('dn_' in k for k in losses)
    assert torch.isfinite(sum(losses.values()))


def test_predict_topk_and_rescale():
    h = head().eval()
    hidden, refs = inputs(NQ, num_layers=1)
    results = h.predict(hidden, refs[:2], samples((1, 1)), rescale=True)
    assert len(results) == 2
    res = results[0]
    assert res.bboxes.shape == (5, 4) and res.scores.shape == (5, )
    assert torch.all(res.scores[:-1] >= res.scores[1:])
    assert res.labels.max() < NUM_CLASSES
    # x scaled by 80 / 2.0, y by 64 / 0.5
    assert res.bboxes[:, 0::2].max() <= 40 + 1e-4
    assert res.bboxes[:, 1::2].max() <= 128 + 1e-4


def test_box_branch_activation_keeps_the_keys():
    """DEIM's SiLU box MLPs load the same checkpoints as the ReLU ones."""
    relu, silu = head(), head(mlp_act_cfg=dict(type='SiLU'))
    assert relu.state_dict().keys() == silu.state_dict().keys()
    for branch in silu.reg_branches:
        assert [type(m).__name__ for m in branch
                ] == ['Linear', 'SiLU', 'Linear', 'SiLU', 'Linear']
    shared = head(share_pred_layer=True)
    assert shared.reg_branches[0] is shared.reg_branches[-1]
