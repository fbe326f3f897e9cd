"""The segment rules of predict (and of the Slicer panel) against hand computations: per-slice
thresholds along the recipe's axis, the one negative-slice rule, ensembles with member thresholds."""

import numpy as np
import pytest
import torch

from WSSSCamLib.inference import VolumeCams
from WSSSCamLib.masks import Threshold, apply_threshold, classifier_positive
from WSSSCamLib.predict import SegmentationRule, segment_volumes


def cams(axis="K", seed=0, probabilities=(0.9, 0.5, 0.2, 0.7)):
    generator = torch.Generator().manual_seed(seed)
    shape = {"K": (4, 5, 6), "J": (5, 4, 6), "I": (5, 6, 4)}[axis]
    maps = {m: torch.rand(shape, generator=generator) for m in ("grad-cam", "layer-cam")}
    return VolumeCams(maps, torch.tensor(probabilities), 1, axis)


def test_negative_rule_is_strict_at_one_half():
    assert classifier_positive(torch.tensor([0.5, 0.5000001, 0.49])).tolist() == [False, True, False]


@pytest.mark.parametrize("axis", ["K", "J", "I"])
def test_thresholds_cut_each_slice_along_the_models_axis(axis):
    result = cams(axis)
    segments = segment_volumes({"m": result}, SegmentationRule(Threshold("percentile", 80.0), empty_when_negative=True))
    dim = "KJI".index(axis)
    slices = torch.movedim(result.maps["grad-cam"], dim, 0)
    expected = apply_threshold(slices, Threshold("percentile", 80.0)) & (result.probabilities > 0.5)[:, None, None]
    np.testing.assert_array_equal(segments.masks["grad-cam p80"].numpy(), torch.movedim(expected, 0, dim).numpy())
    # by hand for one slice: 80th percentile of its 30 values, strict '>'
    k = 0
    values = slices[k].numpy()
    np.testing.assert_array_equal(
        torch.movedim(segments.masks["grad-cam p80"], dim, 0)[k].numpy(),
        values > np.percentile(values.astype(np.float64), 80),
    )
    assert not torch.movedim(segments.masks["grad-cam p80"], dim, 0)[1].any()  # p = 0.5: negative, emptied


def test_ensembles_use_member_thresholds_and_mean_probability_gate():
    a, b = cams(seed=1, probabilities=(0.9, 0.6, 0.2, 0.4)), cams(seed=2, probabilities=(0.1, 0.6, 0.3, 0.8))
    rule = SegmentationRule(Threshold("fixed", 0.5), "and", (0.3, 0.6, 0.4, 0.7), empty_when_negative=True)
    segments = segment_volumes({"a": a, "b": b}, rule)
    assert list(segments.masks) == [
        "a grad-cam t=0.50",
        "a layer-cam t=0.50",
        "b grad-cam t=0.50",
        "b layer-cam t=0.50",
        "and ensemble t=0.30|t=0.60|t=0.40|t=0.70",
    ]
    maps = [a.maps["grad-cam"], a.maps["layer-cam"], b.maps["grad-cam"], b.maps["layer-cam"]]
    combined = (maps[0] > 0.3) & (maps[1] > 0.6) & (maps[2] > 0.4) & (maps[3] > 0.7)
    gate = torch.tensor([0.5, 0.6, 0.25, 0.6]) > 0.5  # mean probability of the two models per slice
    np.testing.assert_array_equal(
        segments.masks["and ensemble t=0.30|t=0.60|t=0.40|t=0.70"].numpy(), (combined & gate[:, None, None]).numpy()
    )
    mean = segment_volumes({"a": a, "b": b}, SegmentationRule(Threshold("fixed", 0.45), "mean")).masks[
        "mean ensemble t=0.45"
    ]
    np.testing.assert_array_equal(mean.numpy(), (torch.stack(maps).mean(0) > 0.45).numpy())
    assert set(segments.members) == {("a", "grad-cam"), ("a", "layer-cam"), ("b", "grad-cam"), ("b", "layer-cam")}


def test_rule_errors_name_the_problem():
    with pytest.raises(ValueError, match="unknown rule 'xor'"):
        SegmentationRule(ensemble="xor")
    with pytest.raises(ValueError, match="'mean' thresholds the mean map with a fixed t"):
        SegmentationRule(Threshold("otsu"), "mean")
    with pytest.raises(ValueError, match="fixed mode needs a value t in"):
        SegmentationRule(ensemble="and", member_thresholds=(0.2, 1.5))
