"""Threshold modes, fixed-threshold counting and Guan & Loew 2021's mean Dice against hand computations."""

import numpy as np
import pytest
import torch
from skimage.filters import threshold_local, threshold_otsu

from WSSSCamLib.masks import (
    THRESHOLD_GRID,
    Threshold,
    apply_threshold,
    fixed_threshold_counts,
    mean_dice_over_thresholds,
    suppress_negatives,
    threshold_cuts,
)
from WSSSCamLib.metrics import confusion_counts, dice_from_counts

MODES_ALL = [
    Threshold("fixed", 0.3),
    Threshold("percentile"),
    Threshold("mean"),
    Threshold("median"),
    Threshold("otsu"),
    Threshold("adaptive", 3),
]


def test_names_and_parse_round_trip():
    assert [t.name for t in MODES_ALL] == ["t=0.30", "p95", "mean", "median", "otsu", "adaptive3"]
    assert Threshold("adaptive").name == "adaptive15" and Threshold("percentile", 97.5).name == "p97.5"
    for threshold in MODES_ALL + [Threshold("fixed", 0.125), Threshold("percentile", 97.5)]:
        assert Threshold.parse(threshold.name) == threshold
    assert Threshold.parse("0.3") == Threshold("fixed", 0.3)
    assert Threshold.parse(" percentile:90 ") == Threshold("percentile", 90.0)
    assert Threshold.parse("P95") == Threshold("percentile", 95.0)
    assert Threshold.parse("percentile") == Threshold("percentile", 95.0)
    assert Threshold.parse("adaptive") == Threshold("adaptive", 15.0)
    assert Threshold.parse("adaptive:21") == Threshold("adaptive", 21.0)


@pytest.mark.parametrize("text", ["banana", "1.5", "p150", "adaptive:20", "t=", ""])
def test_parse_errors_name_the_text_and_the_forms(text):
    with pytest.raises(ValueError) as error:
        Threshold.parse(text)
    assert repr(text) in str(error.value) and "accepted forms" in str(error.value)


def test_invalid_thresholds_rejected():
    for mode, value in [
        ("fixed", None),
        ("fixed", -0.1),
        ("percentile", 0.0),
        ("mean", 0.5),
        ("adaptive", 4),
        ("nope", None),
    ]:
        with pytest.raises(ValueError):
            Threshold(mode, value)


def test_each_mode_on_a_tiny_map():
    # one sample, 2 x 3 values; numpy reference statistics computed by hand:
    values = [0.0, 0.1, 0.2, 0.4, 0.8, 1.0]  # mean 2.5/6 = 0.41667, median (0.2+0.4)/2 = 0.3
    maps = torch.tensor(values, dtype=torch.float64).view(1, 2, 3)
    assert apply_threshold(maps, Threshold("fixed", 0.4)).view(-1).tolist() == [
        False,
        False,
        False,
        False,
        True,
        True,
    ]  # 0.4 > 0.4 is False
    assert apply_threshold(maps, Threshold("mean")).view(-1).tolist() == [False, False, False, False, True, True]
    assert threshold_cuts(maps, Threshold("median")).item() == pytest.approx(0.3, abs=1e-15)
    assert apply_threshold(maps, Threshold("median")).view(-1).tolist() == [False, False, False, True, True, True]
    # 50th..95th percentiles, numpy 'linear': position q/100 * 5
    assert threshold_cuts(maps, Threshold("percentile", 90)).item() == pytest.approx(0.9, abs=1e-12)  # 0.8 + 0.5 * 0.2
    assert apply_threshold(maps, Threshold("percentile", 90)).view(-1).tolist() == [False] * 5 + [True]
    # Otsu: two clusters {0, 0.1, 0.2} and {0.8, 1.0} + 0.4 -> cut between 0.2 and 0.8
    otsu = apply_threshold(maps, Threshold("otsu")).view(-1).tolist()
    assert otsu[:3] == [False] * 3 and otsu[4:] == [True, True]


def test_percentile_and_median_against_numpy():
    g = torch.Generator().manual_seed(0)
    maps = torch.rand(3, 7, 5, generator=g, dtype=torch.float64)
    flat = maps.view(3, -1).numpy()
    for q in (1.0, 37.5, 95.0, 99.0):
        expected = np.percentile(flat, q, axis=1)
        assert np.allclose(threshold_cuts(maps, Threshold("percentile", q)).numpy(), expected, rtol=0, atol=1e-12)
    assert np.allclose(threshold_cuts(maps, Threshold("median")).numpy(), np.median(flat, axis=1), atol=1e-12)
    assert np.allclose(threshold_cuts(maps, Threshold("mean")).numpy(), flat.mean(axis=1), atol=1e-12)
    mask = apply_threshold(maps, Threshold("percentile", 95.0))
    assert torch.equal(mask, maps > torch.tensor(np.percentile(flat, 95.0, axis=1)).view(3, 1, 1))


def test_otsu_against_skimage():
    g = torch.Generator().manual_seed(1)
    low = 0.05 + 0.25 * torch.rand(2, 300, generator=g)
    high = 0.55 + 0.4 * torch.rand(2, 200, generator=g)
    maps = torch.cat([low, high], dim=1)[:, torch.randperm(500, generator=g)].view(2, 20, 25)
    cuts = threshold_cuts(maps, Threshold("otsu"))
    for n in range(2):
        sample = maps[n].numpy()
        # image-based skimage (256 bins over the sample's own range): within one of our bins
        assert abs(cuts[n].item() - threshold_otsu(sample)) <= 1 / 256
        # given the same 256-bin histogram over [0, 1], skimage's criterion returns our cut exactly
        counts = np.bincount(
            np.clip(np.floor(sample.astype(np.float64) * 256), 0, 255).astype(int).ravel(), minlength=256
        )
        centres = (np.arange(256) + 0.5) / 256
        assert cuts[n].item() == pytest.approx(threshold_otsu(hist=(counts, centres)), abs=1e-7)


def test_adaptive_against_skimage_2d_and_3d():
    g = torch.Generator().manual_seed(2)
    for shape in [(2, 9, 11), (2, 5, 6, 7)]:
        maps = torch.rand(*shape, generator=g)
        mask = apply_threshold(maps, Threshold("adaptive", 5))
        for n in range(shape[0]):
            sample = maps[n].double().numpy()
            assert np.array_equal(mask[n].numpy(), sample > threshold_local(sample, 5, method="gaussian", offset=0))
    with pytest.raises(ValueError, match="adaptive"):
        threshold_cuts(maps, Threshold("adaptive"))


def test_all_zero_and_constant_maps_give_empty_masks_in_every_mode():
    zeros = torch.zeros(2, 6, 6)
    constant = torch.full((1, 6, 6), 0.7)
    for threshold in MODES_ALL:
        assert not apply_threshold(zeros, threshold).any(), threshold.name
    for threshold in [Threshold("percentile"), Threshold("mean"), Threshold("median"), Threshold("otsu")]:
        assert not apply_threshold(constant, threshold).any(), threshold.name


def test_statistics_are_per_sample():
    maps = torch.stack([torch.linspace(0, 0.5, 16), torch.linspace(0.5, 1.0, 16)]).view(2, 4, 4)
    cuts = threshold_cuts(maps, Threshold("mean"))
    assert cuts.tolist() == pytest.approx([0.25, 0.75], abs=1e-6)
    assert apply_threshold(maps, Threshold("mean")).view(2, -1).sum(1).tolist() == [8, 8]


def test_bad_maps_rejected():
    with pytest.raises(ValueError, match="floating"):
        apply_threshold(torch.zeros(2, 3, 3, dtype=torch.bool), Threshold("mean"))
    with pytest.raises(ValueError, match="shape"):
        fixed_threshold_counts(torch.zeros(2, 3, 3), torch.zeros(2, 3, 4, dtype=torch.bool), [0.5])


def _loop_counts(maps, reference, thresholds):
    return torch.stack([confusion_counts(apply_threshold(maps, Threshold("fixed", t)), reference) for t in thresholds])


@pytest.mark.parametrize("shape", [(4, 6, 7), (3, 4, 5, 6)])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_fixed_threshold_counts_equal_the_loop_with_ties(shape, dtype):
    g = torch.Generator().manual_seed(3)
    maps = torch.rand(*shape, generator=g).to(dtype)
    # put many values exactly on grid values (ties: map == t must be background)
    ties = torch.rand(*shape, generator=g) < 0.4
    grid_values = torch.tensor(THRESHOLD_GRID, dtype=dtype)[torch.randint(0, 9, shape, generator=g)]
    maps = torch.where(ties, grid_values, maps)
    maps[0] = 0.0  # an all-zero sample
    reference = torch.rand(*shape, generator=g) < 0.3
    reference[1] = False  # an empty reference
    thresholds = [0.5, 0.1, 0.3, 0.3, 0.0, 1.0] + list(THRESHOLD_GRID)
    counts = fixed_threshold_counts(maps, reference, thresholds)
    assert counts.dtype == torch.int64 and counts.shape == (len(thresholds), shape[0], 4)
    assert torch.equal(counts, _loop_counts(maps, reference, thresholds))


def test_fixed_threshold_counts_hand_example():
    maps = torch.tensor([[0.1, 0.3, 0.3, 0.7]])
    reference = torch.tensor([[False, True, True, True]])
    counts = fixed_threshold_counts(maps, reference, [0.3, 0.0])
    # t = 0.3: mask 0001 -> tp 1, fp 0, fn 2, tn 1; t = 0: mask 1111 -> tp 3, fp 1, fn 0, tn 0
    assert counts.tolist() == [[[1, 0, 2, 1]], [[3, 1, 0, 0]]]


def test_mean_dice_over_thresholds_against_a_hand_loop():
    g = torch.Generator().manual_seed(4)
    maps = torch.rand(3, 8, 8, generator=g, dtype=torch.float64)
    reference = maps + 0.3 * torch.rand(3, 8, 8, generator=g, dtype=torch.float64) > 0.8
    reference[2] = False
    expected = torch.zeros(3, dtype=torch.float64)
    for k in range(256):
        mask = maps > k / 255
        for n in range(3):
            a, b = mask[n].sum().item(), reference[n].sum().item()
            both = (mask[n] & reference[n]).sum().item()
            expected[n] += (2 * both / (a + b) if a + b else 1.0) / 256
    assert torch.allclose(mean_dice_over_thresholds(maps, reference), expected, rtol=0, atol=1e-12)


def test_mean_dice_over_thresholds_small_steps_by_hand():
    maps = torch.tensor([[0.0, 0.6, 1.0]])
    reference = torch.tensor([[False, True, True]])
    # steps 3 -> t = 0, 0.5, 1: masks 011 (Dice 1), 011 (1), 000 (0) -> 2/3
    assert mean_dice_over_thresholds(maps, reference, steps=3).item() == pytest.approx(2 / 3, abs=1e-15)
    # empty reference: 000 at t=0.5? no, mask 011 (0), 011 (0), 000 (1 by convention) -> 1/3
    assert mean_dice_over_thresholds(maps, torch.zeros(1, 3, dtype=torch.bool), steps=3).item() == pytest.approx(
        1 / 3, abs=1e-15
    )
    assert dice_from_counts(fixed_threshold_counts(maps, reference, [1.0])).item() == 0.0


def test_suppress_negatives():
    masks = torch.ones(3, 2, 2, dtype=torch.bool)
    out = suppress_negatives(masks, torch.tensor([True, False, True]))
    assert out.view(3, -1).sum(1).tolist() == [4, 0, 4]
    assert suppress_negatives(masks, [False, False, True]).view(3, -1).sum(1).tolist() == [0, 0, 4]
    with pytest.raises(ValueError, match="flags"):
        suppress_negatives(masks, [True])
