"""Metrics: overlap of binary masks (Dice, IoU)."""

from .overlap import dice, iou

__all__ = ["dice", "iou"]
