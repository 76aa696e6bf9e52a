"""Checkpoint the random number generators so a resumed run continues exactly.

mmengine restores the model, optimizer, schedulers, message hub and the
sampler's epoch on ``--resume``, but not the Python/numpy/torch generators:
the resumed run re-seeds them, so data augmentation (flips, crops, scales)
and dropout/drop-path draw different numbers than the uninterrupted run.
This hook stores every rank's generator states in the checkpoint and
restores them on resume.
"""
import random
from typing import Optional

import numpy as np
import torch
from mmdet.registry import HOOKS
from mmengine.dist import all_gather_object, get_rank, get_world_size
from mmengine.hooks import Hook
from mmengine.logging import print_log


def capture_random_state() -> dict:
    """The current states of Python's, numpy's and torch's generators."""
    state = dict(
        python=random.getstate(),
        numpy=np.random.get_state(),
        torch=torch.get_rng_state())
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def restore_random_state(state: dict) -> None:
    """Inverse of :func:`capture_random_state`."""
    random.setstate(state['python'])
    np.random.set_state(state['numpy'])
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state['cuda'])


@HOOKS.register_module()
class RandomStateHook(Hook):
    """Save each rank's RNG states in checkpoints; restore them on resume.

    At the end of every training epoch (before the checkpoint hook and before
    validation, which also draws random numbers) each rank records its
    generator states ``S``; all ranks' states go into the checkpoints written
    for that epoch, and the next epoch starts from ``S`` both in the
    uninterrupted run and in a run resumed from one of those checkpoints, so
    the two are identical.

    Checkpoints written in the middle of an epoch (iteration-based saving)
    carry the states only in single-process runs (mmengine writes
    checkpoints on rank 0 alone, where the other ranks' states are unknown);
    they are restored once, at the start of the resumed run.

    Enabled in ``configs/_base_/default_runtime.py`` as
    ``default_hooks.random_state``. When the world size changed since the
    checkpoint was written, the states cannot be matched to ranks: the run
    keeps its fresh seeds and a warning says so.
    """
    priority = 'LOW'  # after_train_epoch before CheckpointHook (VERY_LOW)

    def __init__(self):
        self._state: Optional[dict] = None  # what the next epoch starts from
        self._all_states: Optional[list] = None
        self._state_iter: Optional[int] = None

    def after_train_epoch(self, runner) -> None:
        # Every rank runs this hook, so gathering is safe here (unlike in
        # before_save_checkpoint, which only rank 0 calls).
        self._state, self._state_iter = capture_random_state(), runner.iter
        self._all_states = all_gather_object(self._state)

    def before_save_checkpoint(self, runner, checkpoint: dict) -> None:
        if self._state_iter == runner.iter:
            checkpoint['random_state'] = self._all_states
        elif get_world_size() == 1:
            self._state, self._state_iter = capture_random_state(), runner.iter
            self._all_states = [self._state]
            checkpoint['random_state'] = self._all_states

    def after_load_checkpoint(self, runner, checkpoint: dict) -> None:
        states: Optional[list] = checkpoint.get('random_state')
        if not runner._resume or states is None:
            return  # load_from (fine-tuning) keeps the run's own seed
        if len(states) != get_world_size():
            print_log(
                f'RandomStateHook: the checkpoint holds RNG states of '
                f'{len(states)} ranks but {get_world_size()} run now; '
                'resuming with freshly seeded generators',
                'current',
                level=30)
            return
        self._state = states[get_rank()]
        self._state_iter = checkpoint['meta']['iter']

    def before_train_epoch(self, runner) -> None:
        # Before the epoch's data iterator exists, so augmentation of its
        # first batch already draws from the restored generators.
        if self._state is not None:
            restore_random_state(self._state)
            self._state = None
