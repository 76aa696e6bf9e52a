"""MultiImageRandomChoice: mmcv's RandomChoice for MultiImageMixDataset."""
from typing import Dict, List, Optional, Sequence, Union

from mmcv.transforms import RandomChoice
from mmdet.registry import TRANSFORMS


@TRANSFORMS.register_module()
class MultiImageRandomChoice(RandomChoice):
    """One branch of transforms, drawn per sample, where a branch may mix
    images (mmdet's ``Mosaic``, ``MixUp``...).

    mmdet's :class:`MultiImageMixDataset` fetches the extra images only for
    its top-level transforms with a ``get_indexes`` method, so a ``Mosaic``
    nested in mmcv's ``RandomChoice`` never gets them. This class draws the
    branch in ``get_indexes`` and returns the indexes of that branch's mixing
    transform ([] for a branch without one); ``transform`` then applies that
    branch. DEIM's stage 2 is the use: Mosaic (and its affine) with
    probability 0.5, otherwise RT-DETR's zoom-out and IoU crop, never both
    on one sample. (mmdet's ``Mosaic`` fits each image's long side into a
    tile placed against the canvas centre, DEIM's resizes the short side and
    pastes on a grid: see ``configs/_base_/datasets/coco_detection_deim.py``.)

    A branch holds at most one mixing transform, at its top level (the
    wrapper passes one set of ``mix_results``). Outside a
    ``MultiImageMixDataset`` only branches without one can run.

    Args:
        transforms (list[list[dict]]): The branches, each a list of
            transforms.
        prob (list[float], optional): Probability of each branch (sum 1).
            Defaults to uniform.
    """

    def __init__(self,
                 transforms: List[List[dict]],
                 prob: Optional[List[float]] = None) -> None:
        super().__init__(transforms, prob)
        self.mixers = []  # per branch: its transform with get_indexes
        for i, branch in enumerate(self.transforms):
            mixers = [
                t for t in branch.transforms if hasattr(t, 'get_indexes')
            ]
            if len(mixers) > 1:
                raise ValueError(
                    f'MultiImageRandomChoice: branch {i} has '
                    f'{len(mixers)} transforms that mix images '
                    f'({[type(t).__name__ for t in mixers]}); at most one is '
                    'allowed (MultiImageMixDataset passes one set of '
                    'mix_results)')
            self.mixers.append(mixers[0] if mixers else None)
        self._branch = None  # drawn by get_indexes for the next transform

    def get_indexes(self, dataset) -> Union[int, Sequence[int]]:
        """Draw the branch of the next sample; the indexes in ``dataset`` of
        the images it mixes in ([] for a branch that mixes none)."""
        self._branch = self.random_pipeline_index()
        mixer = self.mixers[self._branch]
        return [] if mixer is None else mixer.get_indexes(dataset)

    def transform(self, results: Dict) -> Optional[Dict]:
        """Apply the branch drawn by ``get_indexes`` (MultiImageMixDataset
        sets ``mix_results``); in a plain pipeline, draw one as mmcv's
        RandomChoice does, which no branch that mixes images allows."""
        if 'mix_results' in results:
            return self.transforms[self._branch](results)
        if any(m is not None for m in self.mixers):
            raise RuntimeError(
                'MultiImageRandomChoice: a branch mixes images '
                f'({[type(m).__name__ for m in self.mixers if m]}), so this '
                'transform must be in the pipeline of a MultiImageMixDataset '
                '(which calls get_indexes and sets mix_results)')
        return super().transform(results)
