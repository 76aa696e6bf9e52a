"""D-FINE's box coding: weighting function, integral, distance2bbox, LQE."""
import pytest
import torch
from torch import nn

from rtdetr_mm.models.layers import (LQE, distance2bbox, integral,
                                     weighting_function)


@pytest.mark.parametrize('reg_max,up,reg_scale',
                         [(32, 0.5, 4.0), (32, 0.5, 8.0), (8, 0.25, 2.0)])
def test_weighting_function_properties(reg_max, up, reg_scale):
    w = weighting_function(reg_max, up, reg_scale)
    a = up * reg_scale
    assert w.shape == (reg_max + 1, ) and w.dtype == torch.float32
    half = reg_max // 2
    expected = {0: -2 * a, 1: -a, half: 0.0, reg_max - 1: a, reg_max: 2 * a}
    for n, value in expected.items():
        assert w[n].item() == pytest.approx(value, abs=1e-5), n
    assert torch.all(w[1:] > w[:-1])  # strictly increasing
    torch.testing.assert_close(w, -w.flip(0), rtol=0, atol=1e-5)
    # geometric: finer steps near the centre than near the ends
    steps = w[1:] - w[:-1]
    assert steps[half] < steps[-2] and steps[half - 1] < steps[1]


@pytest.mark.parametrize('reg_max', [31, 2, 0, 8.0])
def test_bad_reg_max(reg_max):
    with pytest.raises(ValueError, match='reg_max must be an even int'):
        weighting_function(reg_max)
    with pytest.raises(ValueError, match='reg_max must be an even int'):
        LQE(reg_max)


def test_integral_one_hot_and_uniform():
    w = weighting_function(8, 0.5, 4.0)
    bins = torch.tensor([0, 3, 4, 8])  # one bin per edge
    logits = torch.full((2, 4, 9), -1e4)
    logits[:, torch.arange(4), bins] = 0.0
    dist = integral(logits.flatten(1), w)  # (2, 4 * 9) -> (2, 4)
    assert dist.shape == (2, 4)
    torch.testing.assert_close(dist, w[bins].expand(2, 4))
    # uniform distribution: the mean of an antisymmetric W is 0
    flat = integral(torch.zeros(3, 5, 36), w)
    assert flat.shape == (3, 5, 4) and flat.abs().max() < 1e-6


def test_distance2bbox():
    ref = torch.tensor([[0.5, 0.4, 0.2, 0.4], [0.3, 0.6, 0.1, 0.2]])
    torch.testing.assert_close(distance2bbox(ref, torch.zeros(2, 4), 4.0), ref)
    # the left edge moves out by d * w / reg_scale; the right edge stays
    box = distance2bbox(ref[:1], torch.tensor([[2.0, 0, 0, 0]]), 4.0)
    x1, x2 = 0.5 - 0.1 - 2 * 0.2 / 4, 0.5 + 0.1
    torch.testing.assert_close(
        box, torch.tensor([[(x1 + x2) / 2, 0.4, x2 - x1, 0.4]]))


def test_lqe_starts_as_identity_and_sees_sharpness():
    lqe = LQE(reg_max=8)
    assert lqe.mlp.layers[0].in_features == 4 * 5
    scores = torch.randn(2, 3, 7)
    corners = torch.randn(2, 3, 36)
    torch.testing.assert_close(lqe(scores, corners), scores, rtol=0, atol=0)
    torch.nn.init.normal_(lqe.mlp.layers[-1].weight)
    sharp, flat = corners * 10, corners * 0
    delta = lqe(scores, sharp) - lqe(scores, flat)
    assert delta.shape == (2, 3, 7)
    # one quality logit per query, added to every class
    assert torch.allclose(delta, delta[..., :1].expand_as(delta))
    assert delta.abs().max() > 0


def test_lqe_activation():
    """DEIM's D-FINE runs the quality MLP with SiLU: same keys, another
    correction."""
    torch.manual_seed(0)
    relu = LQE(reg_max=8)
    nn.init.normal_(relu.mlp.layers[-1].weight)
    silu = LQE(reg_max=8, act_cfg=dict(type='SiLU'))
    silu.load_state_dict(relu.state_dict())
    scores, corners = torch.zeros(2, 3), torch.randn(2, 4 * 9)
    assert not torch.allclose(relu(scores, corners), silu(scores, corners))
