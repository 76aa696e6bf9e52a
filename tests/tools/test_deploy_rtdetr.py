"""tools/deploy/deploy_rtdetr.py on a small RT-DETR with a RIFormer."""
import copy

import torch
from mmdet.registry import MODELS
from mmengine.config import Config
from mmengine.registry import init_default_scope
from mmengine.runner import load_checkpoint

from rtdetr_mm.testing import trained_like
from .conftest import REPO, load_tool

# The headline config, shrunk: a small custom RIFormer, 2 decoder layers.
SMALL = '''_base_ = [{base!r}]
model = dict(
    num_queries=30,
    backbone=dict(
        arch=dict(_delete_=True, layers=[1, 1, 2, 1],
                  embed_dims=[16, 32, 48, 64],
                  mlp_ratios=[2, 2, 2, 2], layer_scale_init_value=1e-5),
        init_cfg=None),
    neck=dict(in_channels=[32, 48, 64], hidden_dim=64,
              encoder_layer=dict(ffn_cfg=dict(feedforward_channels=128))),
    decoder=dict(num_layers=2, layer_cfg=dict(
        self_attn_cfg=dict(embed_dims=64),
        cross_attn_cfg=dict(embed_dims=64),
        ffn_cfg=dict(embed_dims=64, feedforward_channels=128))),
    bbox_head=dict(embed_dims=64),
    dn_cfg=dict(group_cfg=dict(num_dn_queries=10)),
    test_cfg=dict(max_per_img=30))
'''


def test_deploy_rtdetr_riformer(tmp_path):
    cfg_path = tmp_path / 'rtdetr_riformer_small.py'
    cfg_path.write_text(
        SMALL.format(
            base=str(REPO / 'configs' / 'rtdetr_riformer_s12_coco.py')))
    cfg = Config.fromfile(cfg_path)
    init_default_scope('mmdet')
    script = load_tool('deploy/deploy_rtdetr.py')
    inputs, samples = script.check_inputs(64, 'cpu')
    torch.manual_seed(0)  # the same weights whatever ran before
    model = MODELS.build(copy.deepcopy(cfg.model))
    trained_like(model, lambda: script.raw_outputs(model, inputs, samples))
    ckpt = tmp_path / 'epoch_1.pth'
    torch.save(dict(meta=dict(epoch=1), state_dict=model.state_dict()), ckpt)

    new_ckpt, new_cfg = script.main([
        str(cfg_path),
        str(ckpt), '--out-dir',
        str(tmp_path / 'out'), '--size', '64'
    ])

    deploy_cfg = Config.fromfile(new_cfg)
    assert deploy_cfg.model.backbone.deploy is True
    assert deploy_cfg.model.neck.deploy is True
    assert 'init_cfg' not in deploy_cfg.model.backbone
    assert deploy_cfg.load_from == str(new_ckpt)
    saved = torch.load(new_ckpt, map_location='cpu')
    assert saved['meta']['deploy'] is True
    keys = saved['state_dict'].keys()
    assert any('.norm_reparam.' in k for k in keys)
    assert not any('.token_mixer.' in k for k in keys)

    deployed = MODELS.build(deploy_cfg.model)
    load_checkpoint(deployed, str(new_ckpt), map_location='cpu', strict=True)
    # float64, so only the rounding of the folded float32 weights remains
    inputs = inputs.double()
    expected = script.raw_outputs(model.double(), inputs, samples)
    got = script.raw_outputs(deployed.double().eval(), inputs, samples)
    # relative; 2.8e-6 with these (seeded) weights, 1.01e-5 measured with
    # unseeded ones once: float32 rounding of the folded weights
    assert script.max_difference(expected, got) <= 1e-5
    # The training-form and deploy-form checkpoints really differ.
    assert len(keys) < len(model.state_dict())
