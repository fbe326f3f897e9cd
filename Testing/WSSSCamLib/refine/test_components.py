"""Connected components on hand-made masks: keep=peak / largest / above choose the right blobs in 2D and 3D,
connectivity joins diagonal neighbours only when asked, ties are deterministic, and classifier gating
(alone or in the step) empties exactly the samples with probability <= 0.5."""

import pytest
import torch

from WSSSCamLib.masks import classifier_positive
from WSSSCamLib.refine import Components, Gate, RefinementError

# A: 12 px, CAM max 0.6; B: 4 px holding the CAM peak 1.0; C: 2 px, max 0.85, touching B only diagonally
PICTURE = [
    "AAA.......",
    "AAA...BB..",
    "AAA...BB..",
    "AAA.....C.",
    "........C.",
]
VALUES = {"A": 0.6, "B": 0.7, "C": 0.85, ".": 0.1}


def hand_case():
    masks = torch.tensor([[[ch != "." for ch in row] for row in PICTURE]])
    maps = torch.tensor([[[VALUES[ch] for ch in row] for row in PICTURE]])
    maps[0, 1, 6] = 1.0  # the peak, inside B
    return masks, maps


def blobs(*names):
    return torch.tensor([[[ch in names for ch in row] for row in PICTURE]])


@pytest.mark.parametrize(
    ("step", "kept"),
    [
        (Components(), ("B", "C")),  # peak, full (8-) connectivity: B and C are one component
        (Components(connectivity=4), ("B",)),
        (Components(keep="largest"), ("A",)),
        (Components(keep="largest", connectivity=4), ("A",)),
        (Components(keep="above", min_peak=0.8, connectivity=4), ("B", "C")),
        (Components(keep="above", min_peak=0.9, connectivity=4), ("B",)),
        (Components(keep="above", min_peak=0.9), ("B", "C")),
        (Components(keep="above", min_peak=0.5), ("A", "B", "C")),
        (Components(keep="above", min_peak=0.6), ("B", "C")),  # strict, in float32: A's maximum 0.6 is not above 0.6
        (Components(keep="above", min_peak=1.0), ()),
    ],
)
def test_2d_choices_on_a_hand_mask(step, kept):
    masks, maps = hand_case()
    assert torch.equal(step(masks, maps), blobs(*kept))


def test_the_peak_is_taken_inside_the_mask():
    masks, maps = hand_case()
    maps[0, 1, 6] = 0.95
    maps[0, 4, 0] = 1.0  # a higher CAM value outside every component does not count ...
    maps[0, 4, 8] = 0.99  # ... and C now holds the highest value inside the mask
    assert torch.equal(Components(connectivity=4)(masks, maps), blobs("C"))


def test_largest_ties_go_to_the_component_that_comes_first():
    masks = torch.zeros(1, 5, 5, dtype=torch.bool)
    masks[0, 3:5, 0:2] = True  # starts at row 3
    masks[0, 0:2, 3:5] = True  # starts at row 0: first in C order
    out = Components(keep="largest")(masks, torch.rand(1, 5, 5))
    assert out.sum() == 4 and out[0, 0, 3] and not out[0, 3, 0]


@pytest.mark.parametrize(("connectivity", "largest"), [(26, 16), (18, 8), (6, 8)])
def test_3d_connectivity_of_cubes_touching_at_a_corner(connectivity, largest):
    masks = torch.zeros(1, 5, 5, 5, dtype=torch.bool)
    masks[0, 0:2, 0:2, 0:2] = True
    masks[0, 2:4, 2:4, 2:4] = True  # meets the first cube at one corner only
    out = Components(keep="largest", connectivity=connectivity)(masks, torch.rand(1, 5, 5, 5))
    assert out.sum() == largest and out[0, 0, 0, 0]


def test_3d_default_is_26_connectivity_and_peak():
    masks = torch.zeros(1, 6, 6, 6, dtype=torch.bool)
    masks[0, 0:2, 0:2, 0:2] = True
    masks[0, 2:4, 2:4, 2:4] = True
    masks[0, 5, 5, 5] = True
    maps = torch.zeros(1, 6, 6, 6)
    maps[0, 3, 3, 3] = 1.0
    assert Components()(masks, maps).sum() == 16
    maps[0, 5, 5, 5] = 2.0
    assert Components()(masks, maps).sum() == 1


def test_empty_masks_stay_empty():
    masks, maps = hand_case()
    for keep in ("peak", "largest", "above"):
        assert not Components(keep=keep)(torch.zeros_like(masks), maps).any()


def test_gate_empties_the_samples_the_classifier_calls_negative():
    masks, maps = hand_case()
    masks, maps = masks.repeat(3, 1, 1), maps.repeat(3, 1, 1)
    probabilities = torch.tensor([0.9, 0.5, 0.2])  # 0.5 is not positive: the one rule is p > 0.5
    assert classifier_positive(probabilities).tolist() == [True, False, False]
    gated = Gate()(masks, maps, None, probabilities)
    assert torch.equal(gated[0], masks[0]) and not gated[1:].any()
    kept = Components(gate=True)(masks, maps, None, probabilities)
    assert torch.equal(kept[0], blobs("B", "C")[0]) and not kept[1:].any()


def test_gating_needs_probabilities_and_says_so():
    masks, maps = hand_case()
    with pytest.raises(RefinementError, match="components: gating needs the classifier probabilities"):
        Components(gate=True)(masks, maps)
    with pytest.raises(RefinementError, match="gate: gating needs the classifier probabilities"):
        Gate()(masks, maps)
    with pytest.raises(RefinementError, match=r"gate: probabilities must have shape \(1,\)"):
        Gate()(masks, maps, None, torch.tensor([0.9, 0.1]))
    assert Components(gate=True).needs_probabilities and not Components().needs_probabilities


@pytest.mark.parametrize(
    ("kwargs", "setting"),
    [
        ({"keep": "biggest"}, "keep"),
        ({"min_peak": 0.5}, "min_peak"),
        ({"keep": "above", "min_peak": 1.5}, "min_peak"),
        ({"connectivity": 5}, "connectivity"),
        ({"gate": "yes"}, "gate"),
    ],
)
def test_bad_settings_are_refused_by_name(kwargs, setting):
    with pytest.raises(RefinementError, match=rf"^components: setting {setting} "):
        Components(**kwargs)


def test_connectivity_must_fit_the_dimension():
    masks, maps = hand_case()
    with pytest.raises(RefinementError, match=r"components: setting connectivity must be one of \(4, 8\) for 2D"):
        Components(connectivity=26)(masks, maps)
    with pytest.raises(RefinementError, match=r"components: setting connectivity must be one of \(6, 18, 26\) for 3D"):
        Components(connectivity=8)(torch.zeros(1, 3, 3, 3, dtype=torch.bool), torch.zeros(1, 3, 3, 3))
