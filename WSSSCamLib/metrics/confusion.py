"""Confusion counts of binary masks and the scores derived from them, per case and pooled.

Counts are int64 tensors whose last axis is (tp, fp, fn, tn); the leading axes are whatever the
caller stacked (samples N, thresholds T, ensemble combinations C ...). Everything stays on the
device of the input tensors.

Two kinds of score are offered, named as such (DESIGN.md "Metrics"):

* per case: ``dice_from_counts`` / ``iou_from_counts`` give one value per sample; average them
  yourself. Convention: when prediction and reference of a sample are both empty the score is
  ``empty`` (default 1.0, perfect agreement on "nothing there"; pass ``float('nan')`` to exclude such
  samples and average with ``nanmean``).
* pooled (Ostrowski et al. 2023, appendix "mIoU" equation and tables 1-4): ``pooled_scores`` sums
  TP/FP/FN/TN over all samples, computes IoU of the foreground and of the background class
  (background uses TN as its true positives), mIoU = the mean of the two, and
  DSC = 2 mIoU / (1 + mIoU) (this relation reproduces every DSC/mIoU pair of Ostrowski et al. 2023's tables,
  e.g. mIoU 54.2 -> DSC 70.3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

COUNT_NAMES: tuple[str, ...] = ("tp", "fp", "fn", "tn")


def confusion_counts(prediction: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Per-sample confusion counts of two binary masks.

    prediction, reference: N x *spatial (any dtype; non-zero = foreground), same shape, same device.
    Returns int64 N x 4 with columns (tp, fp, fn, tn), on the inputs' device.
    """
    if prediction.shape != reference.shape:
        raise ValueError(
            f"confusion_counts: prediction shape {tuple(prediction.shape)} and reference shape "
            f"{tuple(reference.shape)} differ"
        )
    if prediction.ndim < 2:
        raise ValueError(f"confusion_counts: masks must be N x *spatial, got shape {tuple(prediction.shape)}")
    p = prediction.reshape(prediction.shape[0], -1).bool()
    r = reference.reshape(reference.shape[0], -1).bool()
    voxels = p.shape[1]
    # (the sum of a bool tensor is int64 already; asking for dtype=int64 takes a 3x slower path on the CPU)
    tp = (p & r).sum(1)
    predicted = p.sum(1)
    actual = r.sum(1)
    fp = predicted - tp
    fn = actual - tp
    tn = voxels - tp - fp - fn
    return torch.stack([tp, fp, fn, tn], dim=-1)


def _check_counts(counts: torch.Tensor, who: str) -> torch.Tensor:
    if counts.ndim < 1 or counts.shape[-1] != 4:
        raise ValueError(f"{who}: counts must be ... x 4 (tp, fp, fn, tn), got shape {tuple(counts.shape)}")
    return counts.to(torch.float64)


def dice_from_counts(counts: torch.Tensor, empty: float = 1.0) -> torch.Tensor:
    """Dice = 2 TP / (2 TP + FP + FN) = 2|A and B| / (|A| + |B|), per entry of the leading axes.

    counts: ... x 4 (tp, fp, fn, tn). Returns float64 of shape counts.shape[:-1]. Where prediction
    and reference are both empty (2 TP + FP + FN = 0) the value is ``empty``.
    """
    c = _check_counts(counts, "dice_from_counts")
    tp, fp, fn = c[..., 0], c[..., 1], c[..., 2]
    denominator = 2 * tp + fp + fn
    return torch.where(denominator > 0, 2 * tp / denominator.clamp(min=1), torch.full_like(tp, empty))


def iou_from_counts(counts: torch.Tensor, empty: float = 1.0) -> torch.Tensor:
    """IoU = TP / (TP + FP + FN) = |A and B| / |A or B|, per entry of the leading axes.

    counts: ... x 4 (tp, fp, fn, tn). Returns float64 of shape counts.shape[:-1]. Where prediction
    and reference are both empty (union 0) the value is ``empty``.
    """
    c = _check_counts(counts, "iou_from_counts")
    tp, fp, fn = c[..., 0], c[..., 1], c[..., 2]
    union = tp + fp + fn
    return torch.where(union > 0, tp / union.clamp(min=1), torch.full_like(tp, empty))


@dataclass(frozen=True)
class PooledScores:
    """Scores of counts pooled over a whole set of samples (see ``pooled_scores``).

    fg_dice: 2TP / (2TP + FP + FN) of the pooled counts; fg_iou: TP / (TP + FP + FN);
    bg_iou: TN / (TN + FN + FP) (background as a class: its true positives are TN);
    miou: (fg_iou + bg_iou) / 2; dsc_miou: 2 miou / (1 + miou), the "DSC" of Ostrowski et al. 2023's tables.
    """

    fg_dice: float
    fg_iou: float
    bg_iou: float
    miou: float
    dsc_miou: float


def pooled_score_columns(pooled: torch.Tensor) -> dict[str, torch.Tensor]:
    """Vectorised pooled scores: pooled ... x 4 (already summed) -> dict of float64 tensors of shape pooled.shape[:-1].

    A class absent from both prediction and reference (its union is 0) gets IoU 1 and fg_dice 1,
    the same convention as the per-case scores; no NaN is produced.
    """
    c = pooled.to(torch.float64)
    tp, fp, fn, tn = c.unbind(-1)
    one = torch.ones_like(tp)
    fg_union = tp + fp + fn
    bg_union = tn + fp + fn
    fg_iou = torch.where(fg_union > 0, tp / fg_union.clamp(min=1), one)
    bg_iou = torch.where(bg_union > 0, tn / bg_union.clamp(min=1), one)
    fg_dice = torch.where(fg_union > 0, 2 * tp / (2 * tp + fp + fn).clamp(min=1), one)
    miou = (fg_iou + bg_iou) / 2
    dsc = 2 * miou / (1 + miou)
    return {"fg_dice": fg_dice, "fg_iou": fg_iou, "bg_iou": bg_iou, "miou": miou, "dsc_miou": dsc}


def pooled_scores(counts: torch.Tensor) -> PooledScores:
    """Ostrowski et al. 2023 pooled scores: counts ... x 4 (tp, fp, fn, tn) are summed over ALL leading axes first.

    Ostrowski et al. 2023 (appendix, mIoU equation) with N = 2 classes and confusion matrix p:
    mIoU = 1/2 * [TP / (TP + FP + FN) + TN / (TN + FN + FP)], and its tables report
    DSC = 2 mIoU / (1 + mIoU). ``fg_dice`` is the ordinary foreground Dice of the pooled counts.
    """
    if counts.ndim < 1 or counts.shape[-1] != 4:
        raise ValueError(f"pooled_scores: counts must be ... x 4 (tp, fp, fn, tn), got shape {tuple(counts.shape)}")
    pooled = counts.reshape(-1, 4).to(torch.int64).sum(0)
    columns = pooled_score_columns(pooled)
    return PooledScores(**{name: float(value.item()) for name, value in columns.items()})
