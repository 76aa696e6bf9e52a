import pytest
import torch
from torch import nn

from rtdetr_mm.models.layers import CSPRepLayer, RepNCSPELAN4, SCDown
from rtdetr_mm.testing import trained_like


def check_deploy(build, x):
    """Switched outputs equal eval outputs; a deploy-built block loads the
    switched weights strictly."""
    block = build()
    trained_like(block, lambda: block(x))
    with torch.no_grad():
        ref = block(x)
        block.switch_to_deploy()
        block.switch_to_deploy()  # idempotent
        out = block(x)
    assert torch.allclose(ref, out, atol=1e-5), (ref - out).abs().max()
    assert not any(isinstance(m, nn.BatchNorm2d) for m in block.modules())
    deployed = build(deploy=True).eval()
    deployed.load_state_dict(block.state_dict(), strict=True)
    with torch.no_grad():
        assert torch.allclose(ref, deployed(x), atol=1e-5)


def test_rep_ncsp_elan4_structure():
    block = RepNCSPELAN4(16, 8, 12, 6, num_blocks=2)
    out = block(torch.rand(2, 16, 10, 14))
    assert out.shape == (2, 8, 10, 14)
    assert block.cv1.conv.out_channels == 12
    assert block.cv4.conv.in_channels == 12 + 2 * 6
    for branch, c_in in ((block.cv2, 6), (block.cv3, 6)):
        csp, conv = branch
        # D-FINE's CSPLayer(c_in, c4, n, expansion=1) of VGG blocks
        assert isinstance(csp, CSPRepLayer)
        assert csp.conv1.conv.in_channels == c_in
        assert isinstance(csp.conv3, nn.Identity)
        assert len(csp.bottlenecks) == 2
        assert conv.conv.kernel_size == (3, 3)
        assert isinstance(conv.activate, nn.SiLU)


def test_scdown_structure():
    block = SCDown(8, 16)
    assert block(torch.rand(1, 8, 9, 12)).shape == (1, 16, 5, 6)
    assert block.cv2.conv.groups == 16 and block.cv2.conv.stride == (2, 2)
    assert not block.cv1.with_activation and not block.cv2.with_activation


def test_rep_ncsp_elan4_deploy():
    x = torch.randn(2, 16, 12, 10)
    check_deploy(lambda **kw: RepNCSPELAN4(16, 8, 16, 4, 2, **kw), x)


def test_scdown_deploy():
    x = torch.randn(2, 8, 11, 10)
    check_deploy(lambda **kw: SCDown(8, 8, **kw), x)


def test_bad_arguments():
    with pytest.raises(
            ValueError, match='even positive mid_channels.*'
            'mid_channels=15'):
        RepNCSPELAN4(16, 8, 15, 4)
    with pytest.raises(ValueError, match='branch_channels=0'):
        RepNCSPELAN4(16, 8, 16, 0)
