"""rtdetr_mm.testing.trained_like: the weights every parity check uses."""
import torch
from torch import nn

from rtdetr_mm.testing import trained_like


class Tiny(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm2d(4)
        self.layer_scale = nn.Parameter(torch.full((4, ), 1e-5))
        self.norm = nn.LayerNorm(4)

    def forward(self, x):
        y = self.bn(self.conv(x)) * self.layer_scale.view(1, -1, 1, 1)
        return self.norm(y.mean((2, 3)))


def test_batchnorm_holds_the_statistics_of_the_run():
    model = Tiny()
    x = torch.randn(6, 3, 9, 9) * 3 + 1
    trained_like(model, lambda: model(x))
    assert not model.training and model.bn.momentum == 0.1
    feat = model.conv(x).detach()
    torch.testing.assert_close(model.bn.running_mean, feat.mean((0, 2, 3)))
    torch.testing.assert_close(model.bn.running_var,
                               feat.var((0, 2, 3), unbiased=True))


def test_layer_scales_and_norms_move_away_from_their_init():
    model = trained_like(Tiny(), lambda: None, seed=1)
    assert (model.layer_scale - 0.1).abs().max() < 0.15
    assert model.layer_scale.min() > 0.01
    assert (model.norm.weight - 1).abs().max() > 0.01
    assert model.norm.bias.abs().max() > 0.01
    again = trained_like(Tiny(), lambda: None, seed=1)
    torch.testing.assert_close(model.norm.bias, again.norm.bias)
