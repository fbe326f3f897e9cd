"""From CAM maps to masks: thresholds (fixed, percentile, mean, median, Otsu, adaptive), Guan & Loew 2021's
mean Dice over thresholds, negative suppression, and Ostrowski et al. 2023's ensembles with threshold grid search."""

from .ensembles import (
    RULES,
    combine_masks,
    ensemble_combinations,
    ensemble_counts,
    ensemble_mask,
    grid_search,
    mean_map_mask,
)
from .thresholds import (
    MODES,
    THRESHOLD_GRID,
    Threshold,
    apply_threshold,
    classifier_positive,
    fixed_threshold_counts,
    mean_dice_over_thresholds,
    suppress_negatives,
    threshold_cuts,
)

__all__ = [
    "MODES",
    "RULES",
    "THRESHOLD_GRID",
    "Threshold",
    "apply_threshold",
    "classifier_positive",
    "combine_masks",
    "ensemble_combinations",
    "ensemble_counts",
    "ensemble_mask",
    "fixed_threshold_counts",
    "grid_search",
    "mean_dice_over_thresholds",
    "mean_map_mask",
    "suppress_negatives",
    "threshold_cuts",
]
