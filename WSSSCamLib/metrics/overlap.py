"""Overlap of binary masks, per sample, on any device.

Convention: when both masks of a sample are empty, Dice = IoU = 1 (perfect agreement on
"nothing there"); callers that want such samples excluded filter them out beforehand.
"""

from __future__ import annotations

import torch


def _counts(prediction: torch.Tensor, reference: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    if prediction.shape != reference.shape:
        raise ValueError(f"prediction {tuple(prediction.shape)} and reference {tuple(reference.shape)} differ in shape")
    p = prediction.bool().flatten(1)
    r = reference.bool().flatten(1)
    intersection = (p & r).sum(1).double()
    return intersection, p.sum(1).double(), r.sum(1).double()


def dice(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Dice = 2|A and B| / (|A| + |B|) per sample (N x *spatial masks in, N float64 out)."""
    intersection, p, r = _counts(prediction, reference)
    total = p + r
    return torch.where(total > 0, 2 * intersection / total.clamp(min=1), 1.0)


def iou(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """IoU = |A and B| / |A or B| per sample (N x *spatial masks in, N float64 out)."""
    intersection, p, r = _counts(prediction, reference)
    union = p + r - intersection
    return torch.where(union > 0, intersection / union.clamp(min=1), 1.0)
