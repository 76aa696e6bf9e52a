"""CenteredRandomAffine: mmdet's RandomAffine about the image centre."""
import numpy as np
from mmdet.datasets.transforms import RandomAffine
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class CenteredRandomAffine(RandomAffine):
    """mmdet's :class:`RandomAffine` with rotation, scaling and shear about
    the centre of the output instead of its top-left corner.

    mmdet's matrix ``T @ Sh @ R @ S`` works about the origin, so with
    ``border=(0, 0)`` a scale of 0.5 leaves the image in the top-left
    quarter and a scale of 1.5 cuts off its right and bottom (its YOLOX
    recipe crops a 2x mosaic canvas instead). torchvision's
    ``RandomAffine``, which DEIM applies to its mosaic, works about the
    centre: here the matrix is ``T @ C @ Sh @ R @ S @ C^-1`` with ``C`` the
    translation to the centre; the random draws are mmdet's (same
    arguments).
    """

    # not decorated with cache_randomness: the draws are in the parent's
    # method, which caches them; the centring is deterministic
    def _get_random_homography_matrix(self, height: int,
                                      width: int) -> np.ndarray:
        """(3, 3) float32: the warp of an output of ``height x width``."""
        warp = super()._get_random_homography_matrix(height, width)
        to_centre = self._get_translation_matrix(width / 2, height / 2)
        from_centre = self._get_translation_matrix(-width / 2, -height / 2)
        # translations commute: T @ C @ (Sh R S) @ C^-1
        return (to_centre @ warp @ from_centre).astype(np.float32)
