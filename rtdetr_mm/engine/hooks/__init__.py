"""Hooks registered in mmdet's HOOKS."""
from .random_state_hook import RandomStateHook
from .vanillanet_deep_training import VanillaNetDeepTrainingHook

__all__ = ['RandomStateHook', 'VanillaNetDeepTrainingHook']
