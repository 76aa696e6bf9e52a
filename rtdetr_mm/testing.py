"""Random weights that behave like trained ones, for numerical checks.

Freshly initialised models make comparisons vacuous or flaky: layer scales
of 1e-5 turn blocks into identities, unit BatchNorm statistics leave
activations mis-scaled, and a detector's class prior of 0.01 gives every
query nearly the same score, so a top-K can flip on float ties. Parity
checks (deploy form, ONNX export, benchmarks) start from :func:`trained_like`.
"""
from typing import Callable

import torch
from torch import Tensor, nn

_NORMS = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)


@torch.no_grad()
def trained_like(model: nn.Module,
                 run: Callable[[], object],
                 seed: int = 0) -> nn.Module:
    """Perturb ``model`` in place like training would, then calibrate it.

    * layer scales (parameters named ``*layer_scale*`` or ``*gamma*``)
      become 0.1 +- 0.03; normalisation weights 1 +- 0.2, biases +- 0.2;
    * a detection head's class branches are scaled x4 (scores spread over
      (0, 1) instead of sitting at the prior);
    * linear and conv weights initialised to exactly zero (the last layer of
      box branches, deformable-attention offsets and weights, D-FINE's gates
      and quality heads) get weights of std ``0.5 / sqrt(fan_in)``, so boxes
      move off their references and every branch matters;
    * BatchNorm statistics are the exact statistics of the activations of
      ``run()`` (a forward on structured images), as after training.

    Args:
        model: the model, any mode; returned in eval mode.
        run: calls ``model`` on representative inputs.
        seed: seed of the perturbations.
    """
    gen = torch.Generator().manual_seed(seed)

    def noise(param):
        return torch.randn(param.shape, generator=gen).to(param)

    for name, param in model.named_parameters():
        leaf = name.rsplit('.', 1)[-1]
        if 'layer_scale' in name or leaf == 'gamma':
            param.copy_(0.1 + 0.03 * noise(param))
    for module in model.modules():
        if isinstance(module, (nn.Linear, nn.Conv2d)) and \
                not module.weight.any():
            fan_in = module.weight[0].numel()
            module.weight.copy_(0.5 / fan_in**0.5 * noise(module.weight))
        if isinstance(module, _NORMS) and module.weight is not None:
            module.weight.add_(0.2 * noise(module.weight))
            module.bias.add_(0.2 * noise(module.bias))
    head = getattr(model, 'bbox_head', None)
    for branch in getattr(head, 'cls_branches', []):
        branch.weight.mul_(4.0)

    norms = [
        m for m in model.modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    ]
    momenta = [m.momentum for m in norms]
    model.eval()
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average: the batch's statistics
        m.train()
    run()
    for m, momentum in zip(norms, momenta):
        m.momentum = momentum
    return model.eval()


def structured_images(batch: int = 2, size: int = 64, seed: int = 0) -> Tensor:
    """Smooth ramps (x, y, x*y) plus noise, (batch, 3, size, size): inputs
    whose features spread, unlike constants or pure noise."""
    gen = torch.Generator().manual_seed(seed)
    ramp = torch.linspace(-1, 1, size)
    base = torch.stack([
        ramp[None, :].expand(size, size), ramp[:, None].expand(size, size),
        ramp[None, :] * ramp[:, None]
    ])
    return base + 0.5 * torch.randn(batch, 3, size, size, generator=gen)


def calibrated(model: nn.Module, size: int = 64, seed: int = 0) -> nn.Module:
    """:func:`trained_like` for a model of images (a backbone, a classifier),
    calibrated on two :func:`structured_images`; returned in eval mode."""
    images = structured_images(size=size, seed=seed)
    return trained_like(model, lambda: model(images), seed=seed)
