"""RandomStateHook: generator states travel through checkpoints."""
import random
from types import SimpleNamespace

import numpy as np
import torch

from rtdetr_mm.engine.hooks import RandomStateHook


def _draw():
    return (random.random(), float(np.random.rand()), float(torch.rand(1)))


def _runner(iteration, resume=True):
    return SimpleNamespace(iter=iteration, _resume=resume)


def test_resumed_epoch_draws_what_the_uninterrupted_run_draws():
    torch.manual_seed(0), np.random.seed(0), random.seed(0)
    hook = RandomStateHook()
    checkpoint = {'meta': {'iter': 4}}
    hook.after_train_epoch(_runner(4))
    hook.before_save_checkpoint(_runner(4), checkpoint)
    _draw()  # validation between the save and the next epoch
    hook.before_train_epoch(_runner(4))
    expected = [_draw() for _ in range(3)]

    # a new process: other seeds, then resume from the checkpoint
    torch.manual_seed(123), np.random.seed(123), random.seed(123)
    resumed = RandomStateHook()
    resumed.after_load_checkpoint(_runner(4), checkpoint)
    resumed.before_train_epoch(_runner(4))
    assert [_draw() for _ in range(3)] == expected


def test_later_checkpoints_of_one_iteration_carry_the_same_state():
    """The best-checkpoint save after validation must not move the state."""
    hook = RandomStateHook()
    first, best = {'meta': {'iter': 8}}, {'meta': {'iter': 8}}
    hook.after_train_epoch(_runner(8))
    hook.before_save_checkpoint(_runner(8), first)
    _draw()
    hook.before_save_checkpoint(_runner(8), best)
    torch.testing.assert_close(first['random_state'][0]['torch'],
                               best['random_state'][0]['torch'])
    # an iteration-based save mid-epoch (single process) records anew
    hook.before_save_checkpoint(_runner(12), best)
    assert not torch.equal(first['random_state'][0]['torch'],
                           best['random_state'][0]['torch'])


def test_load_from_and_foreign_world_size_keep_fresh_seeds():
    hook = RandomStateHook()
    checkpoint = {'meta': {'iter': 4}}
    hook.before_save_checkpoint(_runner(4), checkpoint)
    for runner, ckpt in [
        (_runner(4, resume=False), checkpoint),  # fine-tuning with load_from
        (_runner(4),
         dict(checkpoint, random_state=checkpoint['random_state'] * 2)),
    ]:
        fresh = RandomStateHook()
        fresh.after_load_checkpoint(runner, ckpt)
        torch.manual_seed(5)
        state = torch.get_rng_state()
        fresh.before_train_epoch(runner)
        assert torch.equal(torch.get_rng_state(), state)
