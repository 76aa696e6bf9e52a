from .toy_shapes import ToyShapesDataset, generate_toy_shapes
from .transforms import CenteredRandomAffine, MultiImageRandomChoice

__all__ = [
    'ToyShapesDataset', 'generate_toy_shapes', 'CenteredRandomAffine',
    'MultiImageRandomChoice'
]
