"""Overlap of binary masks, per sample, on any device.

Convention: when both masks of a sample are empty, Dice = IoU = 1 (perfect agreement on
"nothing there"); callers that want such samples excluded filter them out beforehand.
"""

from __future__ import annotations

import torch

from .confusion import confusion_counts, dice_from_counts, iou_from_counts


def dice(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Dice = 2|A and B| / (|A| + |B|) per sample (N x *spatial masks in, N float64 out)."""
    return dice_from_counts(confusion_counts(prediction, reference))


def iou(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """IoU = |A and B| / |A or B| per sample (N x *spatial masks in, N float64 out)."""
    return iou_from_counts(confusion_counts(prediction, reference))
