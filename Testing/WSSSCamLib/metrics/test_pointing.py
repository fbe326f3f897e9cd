"""Pointing game (Zhang et al. 2016) and energy-based pointing game (Wang et al. 2020) by hand, 2D and 3D."""

import math

import pytest
import torch

from WSSSCamLib.metrics import energy_pointing_game, pointing_game


def test_pointing_game_hits_misses_tolerance_and_empty_references():
    maps = torch.zeros(3, 6, 6)
    maps[0, 2, 2] = 1.0  # inside
    maps[1, 0, 5] = 1.0  # two pixels right of the object's corner column
    maps[2, 1, 1] = 1.0  # no object
    reference = torch.zeros(3, 6, 6, dtype=torch.bool)
    reference[:2, 1:4, 1:4] = True
    hits = pointing_game(maps, reference)
    assert hits[:2].tolist() == [1.0, 0.0] and math.isnan(hits[2])
    assert pointing_game(maps, reference, tolerance=1)[1] == 0.0  # (0, 5) is sqrt(1 + 4) from (1, 3)
    assert pointing_game(maps, reference, tolerance=2)[1] == 0.0  # Euclidean, not a square
    assert pointing_game(maps, reference, tolerance=5**0.5)[1] == 1.0
    constant = torch.zeros(1, 6, 6)  # no maximum: a miss, even though the first pixel lies in the object
    corner = torch.zeros(1, 6, 6, dtype=torch.bool)
    corner[0, :2, :2] = True
    assert pointing_game(constant, corner).tolist() == [0.0] == pointing_game(constant, corner, tolerance=3).tolist()
    with pytest.raises(ValueError, match="tolerance must be >= 0"):
        pointing_game(maps, reference, tolerance=-1)


def test_energy_pointing_game_box_and_mask_by_hand():
    maps = torch.zeros(1, 4, 4)
    maps[0, 0, 0], maps[0, 1, 1], maps[0, 3, 3] = 1.0, 2.0, 1.0
    reference = torch.zeros(1, 4, 4, dtype=torch.bool)
    reference[0, 1, 1] = reference[0, 2, 2] = True  # bounding box rows/columns 1..2
    assert float(energy_pointing_game(maps, reference, "mask")[0]) == pytest.approx(2 / 4)
    maps[0, 1, 2] = 4.0  # inside the box, outside the mask
    assert float(energy_pointing_game(maps, reference, "box")[0]) == pytest.approx(6 / 8)
    assert float(energy_pointing_game(maps, reference, "mask")[0]) == pytest.approx(2 / 8)
    assert math.isnan(energy_pointing_game(torch.zeros(1, 4, 4), reference)[0])
    with pytest.raises(ValueError, match="region must be 'box' or 'mask'"):
        energy_pointing_game(maps, reference, "hull")


def test_three_dimensional_maps():
    maps = torch.zeros(1, 3, 4, 4)
    maps[0, 2, 3, 3] = 1.0
    maps[0, 0, 0, 0] = 0.5
    reference = torch.zeros(1, 3, 4, 4, dtype=torch.bool)
    reference[0, 2, 2:, 2:] = True
    assert pointing_game(maps, reference).tolist() == [1.0]
    assert float(energy_pointing_game(maps, reference)[0]) == pytest.approx(1.0 / 1.5)
    with pytest.raises(ValueError, match="reference must have the maps' shape"):
        pointing_game(maps, reference[:, :2])


def test_energy_boxes_are_per_object():
    """Two lesions far apart: their two boxes, not one box around both (Wang et al. had one box per object)."""
    maps = torch.zeros(1, 6, 6)
    maps[0, 2, 2] = 1.0  # between the two objects: inside a box around both, outside both boxes
    maps[0, 0, 0] = 1.0
    reference = torch.zeros(1, 6, 6, dtype=torch.bool)
    reference[0, 0, 0] = reference[0, 5, 5] = True
    assert float(energy_pointing_game(maps, reference, "box")[0]) == pytest.approx(0.5)
