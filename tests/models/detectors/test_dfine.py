"""DFINE detector at a tiny size: build, predict, deploy, export wrapper."""
import pytest
import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from torch import nn

from rtdetr_mm.deploy.end2end import End2EndDetector
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
    with pytest.raises(NotImplementedError, match='no training losses'):
        model.loss(*batch)


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


def test_bad_config():
    with pytest.raises(ValueError, match='num_levels=3 positive ints'):
        build(**{'decoder.layer_cfg.cross_attn_cfg.num_points': [2, 4]})
    with pytest.raises(ValueError, match='reg_max must be an even int'):
        build(**{'bbox_head.reg_max': 9})
    with pytest.raises(ValueError, match=r'eval_idx must be in \[-2, 1\]'):
        build(**{'decoder.eval_idx': 2})
    assert DIM == build().embed_dims
