"""Hooks registered in mmdet's HOOKS."""
from .augmentation_stage_hook import AugmentationStageHook
from .finite_loss_hook import FiniteLossHook
from .random_state_hook import RandomStateHook
from .stop_augmentation_hook import StopAugmentationHook
from .vanillanet_deep_training import VanillaNetDeepTrainingHook

__all__ = [
    'AugmentationStageHook', 'FiniteLossHook', 'RandomStateHook',
    'StopAugmentationHook', 'VanillaNetDeepTrainingHook'
]
