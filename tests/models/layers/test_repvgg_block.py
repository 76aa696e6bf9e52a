import torch

from rtdetr_mm.models.layers import CSPRepLayer, RepVGGBlock


def test_repvgg_deploy_equivalence():
    block = RepVGGBlock(6, 6)
    for conv in (block.conv1, block.conv2):
        conv.bn.running_mean.uniform_(-1, 1)
        conv.bn.running_var.uniform_(0.5, 2)
        conv.bn.weight.data.uniform_(0.5, 1.5)
    block.eval()
    x = torch.randn(2, 6, 9, 7)
    ref = block(x)
    block.switch_to_deploy()
    block.switch_to_deploy()
    assert set(dict(block.named_children())) == {'conv', 'act'}
    assert torch.allclose(block(x), ref, atol=1e-5)
    fused = RepVGGBlock(6, 6, deploy=True)
    fused.load_state_dict(block.state_dict())
    assert torch.allclose(fused.eval()(x), ref, atol=1e-5)


def test_csp_rep_layer_shapes():
    layer = CSPRepLayer(16, 8, num_blocks=2, expansion=1.0)
    assert isinstance(layer.conv3, torch.nn.Identity)
    assert layer(torch.rand(1, 16, 5, 6)).shape == (1, 8, 5, 6)
    layer = CSPRepLayer(16, 8, num_blocks=1, expansion=0.5)
    assert layer.conv1.conv.out_channels == 4
    assert layer(torch.rand(1, 16, 5, 6)).shape == (1, 8, 5, 6)
