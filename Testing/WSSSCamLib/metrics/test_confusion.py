"""Confusion counts, per-case Dice/IoU and Ostrowski et al. 2023's pooled scores against hand-counted cases."""

import math

import pytest
import torch

from WSSSCamLib.metrics import (
    PooledScores,
    confusion_counts,
    dice,
    dice_from_counts,
    iou,
    iou_from_counts,
    pooled_scores,
)


def masks(*rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_hand_counted_confusion_and_scores():
    prediction = masks([1, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0])
    reference = masks([0, 1, 1, 1, 1, 0], [0, 1, 1, 0, 0, 0], [0, 0, 0, 0, 0, 0], [0, 0, 0, 0, 0, 0])
    counts = confusion_counts(prediction, reference)
    assert counts.dtype == torch.int64
    # rows: overlap / empty prediction / empty reference / both empty
    assert counts.tolist() == [[2, 1, 2, 1], [0, 0, 2, 4], [0, 2, 0, 4], [0, 0, 0, 6]]
    assert dice_from_counts(counts).tolist() == [4 / 7, 0.0, 0.0, 1.0]
    assert iou_from_counts(counts).tolist() == [2 / 5, 0.0, 0.0, 1.0]
    excluded = dice_from_counts(counts, empty=float("nan"))
    assert excluded[:3].tolist() == [4 / 7, 0.0, 0.0] and math.isnan(excluded[3].item())
    assert math.isnan(iou_from_counts(counts, empty=float("nan"))[3].item())
    # agrees with the existing per-sample overlap functions
    assert torch.equal(dice_from_counts(counts), dice(prediction, reference))
    assert torch.equal(iou_from_counts(counts), iou(prediction, reference))


def test_counts_of_volumes_and_leading_axes():
    prediction = torch.zeros(2, 2, 3, 3, dtype=torch.bool)
    reference = torch.zeros(2, 2, 3, 3, dtype=torch.bool)
    prediction[0, 0] = True  # 9 voxels
    reference[0, :, 0] = True  # 6 voxels, 3 of them in the prediction
    counts = confusion_counts(prediction, reference)
    assert counts.tolist() == [[3, 6, 3, 6], [0, 0, 0, 18]]
    stacked = torch.stack([counts, counts.flip(0)])  # 2 x 2 x 4 -> scores 2 x 2
    assert dice_from_counts(stacked).tolist() == [[6 / 15, 1.0], [1.0, 6 / 15]]


def test_shape_mismatch_names_both_shapes():
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(2, 4\)"):
        confusion_counts(torch.zeros(2, 3), torch.zeros(2, 4))
    with pytest.raises(ValueError, match="x 4"):
        dice_from_counts(torch.zeros(3, 3))


def test_pooled_scores_hand_example():
    # sample 1: tp 2 fp 1 fn 2 tn 1; sample 2: tp 0 fp 0 fn 2 tn 4 -> pooled tp 2 fp 1 fn 4 tn 5
    counts = torch.tensor([[2, 1, 2, 1], [0, 0, 2, 4]])
    scores = pooled_scores(counts)
    assert isinstance(scores, PooledScores)
    fg_iou, bg_iou = 2 / 7, 5 / 10  # TP/(TP+FP+FN), TN/(TN+FN+FP)
    miou = (fg_iou + bg_iou) / 2
    assert scores.fg_iou == pytest.approx(fg_iou, abs=1e-15)
    assert scores.bg_iou == pytest.approx(bg_iou, abs=1e-15)
    assert scores.miou == pytest.approx(miou, abs=1e-15)
    assert scores.dsc_miou == pytest.approx(2 * miou / (1 + miou), abs=1e-15)
    assert scores.fg_dice == pytest.approx(4 / 9, abs=1e-15)
    # summed over ALL leading axes
    assert pooled_scores(counts.view(2, 1, 4)) == scores


def test_pooled_scores_edge_cases():
    # empty prediction everywhere: fg IoU 0, bg IoU = tn / (tn + fn)
    empty_prediction = pooled_scores(torch.tensor([[0, 0, 3, 5]]))
    assert empty_prediction.fg_iou == 0.0 and empty_prediction.fg_dice == 0.0 and empty_prediction.bg_iou == 5 / 8
    # empty reference everywhere, prediction not empty
    empty_reference = pooled_scores(torch.tensor([[0, 2, 0, 6]]))
    assert empty_reference.fg_iou == 0.0 and empty_reference.bg_iou == 6 / 8
    # both empty everywhere: foreground class absent -> IoU 1 by convention, perfect scores
    both = pooled_scores(torch.tensor([[0, 0, 0, 8]]))
    assert both == PooledScores(1.0, 1.0, 1.0, 1.0, 1.0)
    # Ostrowski et al. 2023 table 1: mIoU 54.2 -> DSC 70.3
    assert 2 * 0.542 / 1.542 == pytest.approx(0.703, abs=5e-4)
