"""Dice and IoU against hand-counted cases, including the empty-mask convention."""

import torch

from WSSSCamLib.metrics import dice, iou


def masks(*rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_hand_counted_overlap():
    prediction = masks([1, 1, 1, 0, 0, 0])[None]
    reference = masks([0, 1, 1, 1, 1, 0])[None]
    # |A and B| = 2, |A| = 3, |B| = 4, |A or B| = 5
    assert dice(prediction, reference).item() == 2 * 2 / 7
    assert iou(prediction, reference).item() == 2 / 5


def test_empty_masks_convention():
    empty = torch.zeros(1, 4, dtype=torch.bool)
    full = torch.ones(1, 4, dtype=torch.bool)
    assert dice(empty, empty).item() == 1.0 and iou(empty, empty).item() == 1.0  # both empty: agreement
    assert dice(empty, full).item() == 0.0 and iou(full, empty).item() == 0.0


def test_per_sample_results_for_a_batch_of_volumes():
    a = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    b = torch.zeros(2, 3, 4, 4, dtype=torch.bool)
    a[0, :, :2] = True
    b[0, :, 1:3] = True
    result = iou(a, b)
    assert result.shape == (2,)
    assert result[0].item() == 12 / 36 and result[1].item() == 1.0
