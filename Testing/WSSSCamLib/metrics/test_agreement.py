"""Syed et al. 2023 eq. 17/18 agreement: mean IoU over unordered member pairs, per sample, by hand."""

import pytest
import torch

from WSSSCamLib.metrics import pairwise_iou_agreement, pairwise_iou_agreement_at_thresholds


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


def test_agreement_at_thresholds_equals_thresholding_first():
    generator = torch.Generator().manual_seed(4)
    maps = [torch.rand(6, 5, 7, generator=generator) for _ in range(3)]
    maps[0][0] = maps[1][0] = maps[2][0] = 0.0  # slice 0: every mask empty -> agreement 1 by convention
    maps[1][1, :2] = 0.5  # values exactly at a threshold stay background (strict '>')
    thresholds = [0.5, 0.1, 0.9, 0.5]
    got = pairwise_iou_agreement_at_thresholds(maps, thresholds)
    expected = torch.stack([pairwise_iou_agreement([m > t for m in maps]) for t in thresholds])
    assert got.shape == (4, 6) and torch.allclose(got, expected, rtol=0, atol=1e-12)
    assert (got[:, 0] == 1).all()
    # hand case: two 1 x 4 maps, at t = 0.5 masks 1100 and 0110 -> IoU 1/3
    a, b = torch.tensor([[0.9, 0.8, 0.1, 0.2]]), torch.tensor([[0.1, 0.7, 0.6, 0.0]])
    assert pairwise_iou_agreement_at_thresholds([a, b], [0.5]).item() == pytest.approx(1 / 3)
    with pytest.raises(ValueError, match="at least 2"):
        pairwise_iou_agreement_at_thresholds([a], [0.5])
    with pytest.raises(ValueError, match="member 1"):
        pairwise_iou_agreement_at_thresholds([a, b > 0.5], [0.5])
