"""Reversible autograd for one RevCol column (Cai et al., ICLR 2023).

A column updates four levels in order, each from the level below in the same
column (``down``) and the level above in the previous column (``up``)::

    c_k <- alpha_k * c_k + F_k(c_{k-1}, c_{k+1})      k = 0..3
    (c_{-1} is the stem output x; level 3 and the first column have no up)

Because every update is invertible, ``c_k = (c_k' - F_k(.)) / alpha_k``
recovers a column's inputs from its outputs. :class:`ReversibleColumn` keeps
only each column's four outputs (and the stem output, shared by all
columns); in backward it walks the levels 3..0, recomputes ``F_k`` with the
forward's RNG and autocast state restored, reconstructs the column's inputs
and returns the gradients of the inputs, the alphas and every parameter.

The parameters are inputs of the autograd function, so autograd (and DDP's
reducer) sees them in the graph: a frozen stem does not cut the backbone off
from the loss, and gradients reach the parameters through the ordinary
accumulation path. DDP works with ``find_unused_parameters=False`` (what the
configs set; the official implementation requires it).
"""
from contextlib import ExitStack
from typing import Callable, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

# F_k(down, up) -> update of level k; ``up`` is None where there is none.
LevelFn = Callable[[Tensor, Optional[Tensor]], Tensor]
NUM_LEVELS = 4


def run_column(
    levels: Sequence[LevelFn],
    alphas: Sequence[Tensor],
    x: Tensor,
    previous: Optional[Sequence[Tensor]],
    before_level: Optional[Callable[[int],
                                    None]] = None) -> Tuple[Tensor, ...]:
    """Apply one column's four level updates (the plain, storing path).

    Args:
        levels: ``F_0..F_3``.
        alphas: the per-channel shortcut scales, each (1, C_k, 1, 1).
        x: stem output (B, C_0, H/4, W/4).
        previous: the previous column's (c_0, c_1, c_2, c_3), or None for
            the first column (whose inputs are zero).
        before_level: called with k before ``F_k`` runs (RNG capture).

    Returns:
        (c_0, c_1, c_2, c_3) at strides 4, 8, 16, 32.
    """
    new: List[Tensor] = []
    for k in range(NUM_LEVELS):
        if before_level is not None:
            before_level(k)
        down = x if k == 0 else new[k - 1]
        up = None if previous is None or k == NUM_LEVELS - 1 \
            else previous[k + 1]
        update = levels[k](down, up)
        new.append(update if previous is None else alphas[k] * previous[k] +
                   update)
    return tuple(new)


def _capture_rng(device: torch.device) -> Tuple[Tensor, Optional[Tensor]]:
    cuda_state = torch.cuda.get_rng_state(device) \
        if device.type == 'cuda' else None
    return torch.get_rng_state(), cuda_state


def _restore_rng(state: Tuple[Tensor, Optional[Tensor]],
                 device: torch.device) -> None:
    cpu_state, cuda_state = state
    torch.set_rng_state(cpu_state)
    if cuda_state is not None:
        torch.cuda.set_rng_state(cuda_state, device)


def _autocast_states(device: torch.device) -> dict:
    """Autocast settings of the CPU and of ``device``'s type, to replay."""
    return {
        device_type:
        dict(
            enabled=torch.is_autocast_enabled(device_type),
            dtype=torch.get_autocast_dtype(device_type),
            cache_enabled=torch.is_autocast_cache_enabled())
        for device_type in {'cpu', device.type}
        if torch.amp.is_autocast_available(device_type)  # not on 'meta'
    }


class ReversibleColumn(torch.autograd.Function):
    """``run_column`` that stores only its outputs; see the module docstring.

    Called through :func:`reversible_column`, which flattens the parameters
    into the inputs as ``forward`` expects them.
    """

    @staticmethod
    def forward(ctx, levels: Sequence[nn.Module], alphas: Sequence[Tensor],
                param_counts: Sequence[int], x: Tensor, c0, c1, c2, c3,
                *params: Tensor) -> Tuple[Tensor, ...]:
        previous = None if c0 is None else (c0, c1, c2, c3)
        device = x.device
        ctx.rng_states = []
        ctx.autocast_states = _autocast_states(device)
        new = run_column(
            levels,
            alphas,
            x,
            previous,
            before_level=lambda k: ctx.rng_states.append(_capture_rng(device)))
        ctx.levels, ctx.alphas = levels, alphas
        ctx.param_counts = param_counts
        ctx.first_column = previous is None
        ctx.save_for_backward(x, *new)
        return new

    @staticmethod
    def backward(ctx, *grad_new: Tensor):
        x, *new = ctx.saved_tensors
        levels, alphas, first = ctx.levels, ctx.alphas, ctx.first_column
        num_params = sum(ctx.param_counts)
        params = ctx.needs_input_grad[-num_params:]
        # Parameter positions of level k (its alpha first) among ``params``.
        starts = [sum(ctx.param_counts[:k]) for k in range(NUM_LEVELS + 1)]
        level_params = [[alphas[k], *levels[k].parameters()]
                        for k in range(NUM_LEVELS)]
        grad_params: List[Optional[Tensor]] = [None] * num_params
        grad_new = list(grad_new)  # d loss / d c_k' (grows with F_{k+1})
        grad_old: List[Optional[Tensor]] = [None] * NUM_LEVELS
        old: List[Optional[Tensor]] = [None] * NUM_LEVELS  # reconstructed
        grad_x = None
        device = x.device
        cuda_devices = [device] if device.type == 'cuda' else []

        with ExitStack() as stack:
            stack.enter_context(torch.enable_grad())
            stack.enter_context(
                torch.random.fork_rng(
                    devices=cuda_devices, device_type='cuda'))
            for device_type, state in ctx.autocast_states.items():
                stack.enter_context(torch.amp.autocast(device_type, **state))

            for k in reversed(range(NUM_LEVELS)):
                _restore_rng(ctx.rng_states[k], device)
                down = (x if k == 0 else new[k - 1]).detach().requires_grad_()
                up = None if first or k == NUM_LEVELS - 1 else \
                    old[k + 1].detach().requires_grad_()
                old[k + 1:] = [None] * (NUM_LEVELS - k - 1)  # last use
                update = levels[k](down, up)
                trainable = [(i, p) for i, p in enumerate(level_params[k])
                             if params[starts[k] + i]]
                inputs = [down] + ([up] if up is not None else [])
                if first:
                    output = update
                else:
                    with torch.no_grad():  # invert c_k' = a_k c_k + F_k
                        old[k] = (new[k] - update) / alphas[k]
                    old_k = old[k].detach().requires_grad_()
                    inputs.append(old_k)
                    output = alphas[k] * old_k + update
                grads = torch.autograd.grad(
                    output,
                    inputs + [p for _, p in trainable],
                    grad_new[k],
                    allow_unused=True)
                grad_down, grads = grads[0], list(grads[1:])
                if k == 0:
                    grad_x = grad_down
                elif grad_down is not None:
                    grad_new[k - 1] = grad_new[k - 1] + grad_down
                if up is not None:
                    grad_up = grads.pop(0)
                    if grad_up is not None:
                        grad_old[k + 1] = grad_old[k + 1] + grad_up
                if not first:
                    grad_old[k] = grads.pop(0)
                # A parameter that F_k does not use (the first column's
                # alphas scale zero) gets zeros, so DDP sees every gradient.
                # Gradients take the parameter's strides (DDP's bucket views
                # expect them; autograd may give e.g. another stride for a
                # size-1 dimension).
                for (i, p), grad in zip(trainable, grads):
                    if grad is None:
                        grad = torch.zeros_like(p)
                    elif grad.stride() != p.stride():
                        grad = torch.empty_like(p).copy_(grad)
                    grad_params[starts[k] + i] = grad

        needs = ctx.needs_input_grad
        return (None, None, None, grad_x if needs[3] else None,
                *(g if needs[4 + k] else None
                  for k, g in enumerate(grad_old)), *grad_params)


def reversible_column(
        levels: Sequence[nn.Module], alphas: Sequence[Tensor], x: Tensor,
        previous: Optional[Sequence[Tensor]]) -> Tuple[Tensor, ...]:
    """``run_column`` with reversible (activation-free) backward.

    Same arguments and result as :func:`run_column`; the outputs equal it
    exactly, and the gradients up to the rounding of the reconstruction.
    """
    level_params = [[alphas[k], *levels[k].parameters()]
                    for k in range(NUM_LEVELS)]
    previous = previous if previous is not None else [None] * NUM_LEVELS
    return ReversibleColumn.apply(
        levels, alphas, [len(p) for p in level_params], x, *previous,
        *[p for group in level_params for p in group])
