"""Seed 000 eq. 17/18 agreement: mean IoU over unordered member pairs, per sample, by hand."""

import pytest
import torch

from WSSSCamLib.metrics import pairwise_iou_agreement


def masks(*rows):
    return torch.tensor(rows, dtype=torch.bool)


def test_two_members():
    a = masks([1, 1, 0, 0], [0, 0, 0, 0], [1, 0, 0, 0])
    b = masks([0, 1, 1, 0], [0, 0, 0, 0], [0, 0, 0, 0])
    # IoUs: 1/3; both empty -> 1; one empty -> 0
    result = pairwise_iou_agreement([a, b])
    assert result.dtype == torch.float64 and result.tolist() == [1 / 3, 1.0, 0.0]


def test_three_members_volumes():
    a = torch.zeros(1, 2, 2, 2, dtype=torch.bool)
    b = torch.zeros_like(a)
    c = torch.zeros_like(a)
    a[0, 0] = True  # 4 voxels
    b[0, :, 0] = True  # 4 voxels, 2 shared with a
    c[0, 0, 0, 0] = True  # 1 voxel, inside a and b
    # IoU(a, b) = 2/6, IoU(a, c) = 1/4, IoU(b, c) = 1/4 -> mean over 3 pairs
    expected = (2 / 6 + 1 / 4 + 1 / 4) / 3
    assert pairwise_iou_agreement([a, b, c]).item() == pytest.approx(expected, abs=1e-15)
    assert pairwise_iou_agreement([c, a, b]).item() == pytest.approx(expected, abs=1e-15)  # order-free


def test_errors():
    a = masks([1, 0])
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_iou_agreement([a])
    with pytest.raises(ValueError, match="shape"):
        pairwise_iou_agreement([a, masks([1, 0, 0])])
