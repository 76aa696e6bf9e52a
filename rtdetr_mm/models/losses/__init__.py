"""Losses of the detectors (D-FINE's FGL, DDF and GO-LSD matching union;
DEIM's matchability-aware loss)."""
from .dfine_losses import (DecoupledDistillationFocalLoss,
                           FineGrainedLocalizationLoss, bbox2distance,
                           ddf_weight, distance2bins, go_union_assignments,
                           unimodal_distribution_focal_loss)
from .mal_loss import MatchabilityAwareLoss

__all__ = [
    'DecoupledDistillationFocalLoss', 'FineGrainedLocalizationLoss',
    'MatchabilityAwareLoss', 'bbox2distance', 'ddf_weight', 'distance2bins',
    'go_union_assignments', 'unimodal_distribution_focal_loss'
]
