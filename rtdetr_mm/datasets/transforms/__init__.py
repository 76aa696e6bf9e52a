"""Data transforms registered in mmdet's TRANSFORMS."""
from .centered_affine import CenteredRandomAffine
from .random_choice import MultiImageRandomChoice

__all__ = ['CenteredRandomAffine', 'MultiImageRandomChoice']
