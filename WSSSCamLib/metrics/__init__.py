"""Metrics: overlap of binary masks (Dice, IoU), confusion counts with per-case and pooled (Ostrowski et al. 2023)
scores, agreement across CAM methods/models (Syed et al. 2023), pointing games, statistics, and classification (ROC AUC, accuracy)."""

from .agreement import pairwise_iou_agreement, pairwise_iou_agreement_at_thresholds
from .classification import accuracy, roc_auc
from .confusion import (
    PooledScores,
    confusion_counts,
    dice_from_counts,
    iou_from_counts,
    pooled_score_columns,
    pooled_scores,
)
from .overlap import dice, iou
from .pointing import energy_pointing_game, pointing_game
from .statistics import kruskal_wallis, shapiro_wilk, spearman

__all__ = [
    "PooledScores",
    "accuracy",
    "confusion_counts",
    "dice",
    "dice_from_counts",
    "energy_pointing_game",
    "iou",
    "iou_from_counts",
    "kruskal_wallis",
    "pairwise_iou_agreement",
    "pairwise_iou_agreement_at_thresholds",
    "pointing_game",
    "pooled_score_columns",
    "pooled_scores",
    "roc_auc",
    "shapiro_wilk",
    "spearman",
]
