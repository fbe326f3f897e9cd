"""Metrics: overlap of binary masks (Dice, IoU) and classification (ROC AUC, accuracy)."""

from .classification import accuracy, roc_auc
from .overlap import dice, iou

__all__ = ["accuracy", "dice", "iou", "roc_auc"]
