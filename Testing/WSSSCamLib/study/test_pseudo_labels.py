"""Pseudo-labels by hand on tiny arrays: threshold, ignore band, negative slices, filter counts, the source
chosen on a fold's training rows only, and ensemble masks equal to what the study counts."""

import math

import pandas as pd
import pytest
import torch

from WSSSCamLib.errors import InvalidInputError
from WSSSCamLib.masks import Threshold, ensemble_counts, ensemble_mask
from WSSSCamLib.metrics import confusion_counts
from WSSSCamLib.study import ConfigError, parse_config
from WSSSCamLib.study.config import SegmentationFilterSpec
from WSSSCamLib.study.pseudo_labels import (
    CandidateLabels,
    LabelCounts,
    SourceChoice,
    choose_source,
    choose_sources,
    label_quality,
    label_slices,
    labels_to_grid,
    pick_labels,
    selection_dice,
    source_masks,
    uncertain_pixels,
)
from WSSSCamLib.training.segmentation import IGNORE


def config(segmentation, **extra):
    data = {
        "dataset": "d",
        "output": "o",
        "models": [{"name": "a", "architecture": "small-cnn"}, {"name": "b", "architecture": "small-cnn"}],
        "methods": ["grad-cam"],
        "thresholds": ["t=0.3", "t=0.5", "p95"],
        "ensembles": [{"rule": "and", "members": ["a/grad-cam", "b/grad-cam"]}],
        "segmentation": segmentation,
        **extra,
    }
    return parse_config(data, "test.yaml")


MAP = torch.tensor([[[0.10, 0.45, 0.55], [0.62, 0.90, 0.38]], [[0.70, 0.80, 0.90], [0.1, 0.2, 0.3]]])  # 2 x 2 x 3


def test_threshold_band_and_negative_slices_by_hand():
    choice = SourceChoice("threshold", "a", "grad-cam", (("a", "grad-cam"),), (Threshold.parse("t=0.5"),))
    made = source_masks(choice, None, {("a", "grad-cam"): MAP}, {"a": torch.tensor([0.9, 0.8])}, False)
    assert torch.equal(made.masks, MAP > 0.5)
    uncertain = uncertain_pixels(made.values, made.cuts, 0.1)
    # |value - 0.5| <= 0.1: 0.45, 0.55, 0.38? no (0.12); 0.62? no (0.12)
    assert torch.equal(uncertain[0], torch.tensor([[False, True, True], [False, False, False]]))
    labels, keep, counts = label_slices(
        made.masks, uncertain, torch.tensor([1, 0]), made.probability, SegmentationFilterSpec()
    )
    assert labels.dtype == torch.uint8
    assert labels[0].tolist() == [[0, IGNORE, IGNORE], [1, 1, 0]]
    assert labels[1].tolist() == [[0, 0, 0], [0, 0, 0]]  # negative slice: all background, nothing ignored
    assert keep.tolist() == [True, True]
    assert (counts.slices, counts.negative, counts.positive_kept) == (2, 1, 1)
    assert counts.ignored_pixels == 2 and counts.kept_pixels == 12
    assert not uncertain_pixels(made.values, made.cuts, 0.0).any()


def test_percentile_band_is_around_each_slices_own_cut():
    choice = SourceChoice("threshold", "a", "grad-cam", (("a", "grad-cam"),), (Threshold.parse("median"),))
    made = source_masks(choice, None, {("a", "grad-cam"): MAP}, {"a": torch.ones(2)}, False)
    cuts = torch.tensor([(0.45 + 0.55) / 2, (0.3 + 0.7) / 2])  # median of 6 values: the mean of the middle two
    assert torch.allclose(made.cuts[0].double(), cuts.double(), atol=1e-6)
    uncertain = uncertain_pixels(made.values, made.cuts, 0.06)
    assert torch.equal(uncertain, (MAP - cuts.view(2, 1, 1)).abs() <= 0.06)


def test_adaptive_rule_refuses_a_band():
    choice = SourceChoice("threshold", "a", "grad-cam", (("a", "grad-cam"),), (Threshold.parse("adaptive3"),))
    made = source_masks(choice, None, {("a", "grad-cam"): MAP}, {"a": torch.ones(2)}, False)
    with pytest.raises(InvalidInputError, match="ignore_band"):
        uncertain_pixels(made.values, made.cuts, 0.1)


def test_filter_drops_positive_slices_and_counts_them():
    masks = torch.zeros(4, 2, 2, dtype=torch.bool)
    masks[0, 0, 0] = True  # area 0.25
    masks[1] = True  # area 1.0
    masks[2, 0, 0] = True  # area 0.25 but low probability
    slice_labels = torch.tensor([1, 1, 1, 0])
    probability = torch.tensor([0.9, 0.9, 0.2, 0.0])
    rule = SegmentationFilterSpec(min_probability=0.5, min_area=0.1, max_area=0.5)
    labels, keep, counts = label_slices(masks, torch.zeros_like(masks), slice_labels, probability, rule)
    assert keep.tolist() == [True, False, False, True]  # a negative slice is never dropped
    assert (counts.dropped_area, counts.dropped_probability, counts.positive_kept, counts.negative) == (1, 1, 1, 1)


def test_ensemble_mask_equals_what_the_study_counts():
    generator = torch.Generator().manual_seed(0)
    maps = [torch.rand(3, 5, 5, generator=generator) for _ in range(2)]
    reference = torch.rand(3, 5, 5, generator=generator) > 0.6
    for rule in ("and", "or", "<", ">", "majority", "mean"):
        combos, counts = ensemble_counts(maps, reference, rule)
        for index in (0, 7, len(combos) - 1):
            mask = ensemble_mask(maps, rule, combos[index])
            assert torch.equal(confusion_counts(mask, reference), counts[index]), (rule, combos[index])


def test_label_quality_by_hand_leaves_ignored_pixels_out():
    # slice 0: label 1 on 2 px, reference on 3 px, 1 px overlap; one ignored pixel inside the reference
    labels = torch.zeros(3, 2, 3, dtype=torch.uint8)
    reference = torch.zeros(3, 2, 3, dtype=torch.uint8)
    labels[0, 0, :2] = 1
    reference[0, 0, 1:] = 1
    reference[0, 1, 0] = 1
    labels[0, 1, 0] = IGNORE  # left out: not a false negative
    # slice 1: normal, label empty: no counts; slice 2: lesion in the reference, label empty: Dice 0
    reference[2, 1, 2] = 1
    quality = label_quality(labels, reference)
    tp, fp, fn = 1, 1, 1 + 1  # slice 0: (0,1) overlap, (0,0) false positive, (0,2) missed; slice 2: (1,2) missed
    assert quality["fg_dice"] == pytest.approx(2 * tp / (2 * tp + fp + fn))
    assert quality["dice_abnormal"] == pytest.approx((2 * 1 / (2 + 1 + 1) + 0.0) / 2)
    assert quality["abnormal_slices"] == 2
    assert math.isnan(label_quality(labels[1:2], reference[1:2])["dice_abnormal"])


def test_labels_resize_by_nearest_neighbour_keeps_values():
    labels = torch.tensor([[[0, 1], [IGNORE, 1]]], dtype=torch.uint8)
    grid = labels_to_grid(labels, 4)
    assert grid.shape == (1, 4, 4) and set(grid.unique().tolist()) == {0, 1, IGNORE}
    assert grid[0, :2, :2].eq(0).all() and grid[0, 2:, :2].eq(IGNORE).all()


def _rows(fold, role, model, method, kind, result, tp, fp, fn, tn=100):
    return {
        "case": f"c{fold}{role}{tp}",
        "slice": -1,
        "fold": fold,
        "role": role,
        "model": model,
        "method": method,
        "result": result,
        "kind": kind,
        "tp": tp,
        "fp": fp,
        "fn": fn,
        "tn": tn,
        "probability": float("nan"),
        "score": float("nan"),
    }


def test_source_is_chosen_on_the_folds_training_rows_only():
    study = config({"source": "best"})
    rows = [
        _rows(0, "train", "", "empty", "empty", "empty", 0, 0, 10),
        _rows(0, "train", "a", "grad-cam", "threshold", "t=0.30", 5, 5, 5),
        _rows(0, "train", "a", "grad-cam", "threshold", "t=0.50", 8, 1, 2),  # best for fold 0
        _rows(0, "train", "b", "grad-cam", "threshold", "t=0.30", 1, 1, 9),
        _rows(0, "train", "b", "grad-cam", "threshold", "t=0.50", 1, 9, 9),
    ]
    clean = pd.DataFrame(rows)
    choice = choose_source(study, clean, 0)
    assert (choice.kind, choice.model, choice.method, choice.thresholds[0].name) == (
        "threshold",
        "a",
        "grad-cam",
        "t=0.50",
    )
    # held-out rows of fold 0 and training rows of fold 1 (which hold fold 0's held-out cases) favouring b: no change
    noise = [
        _rows(0, "test", "b", "grad-cam", "threshold", "t=0.30", 50, 0, 0),
        _rows(1, "train", "b", "grad-cam", "threshold", "t=0.30", 50, 0, 0),
        _rows(1, "train", "a", "grad-cam", "threshold", "t=0.50", 0, 50, 50),
    ]
    assert choose_source(study, pd.concat([clean, pd.DataFrame(noise)]), 0) == choice
    named = choose_source(config({"source": "b/grad-cam@p95"}), None, 0)
    assert (named.model, named.thresholds[0].name, named.chosen_by) == ("b", "p95", "named")
    explicit = choose_source(config({"source": "b/grad-cam"}), clean, 0)
    assert explicit.thresholds[0].name == "t=0.30"


def test_bad_sources_are_refused_in_one_line_naming_the_key():
    for source, message in [
        ("c/grad-cam", "segmentation.source"),
        ("or(a/grad-cam, b/grad-cam)", "no ensemble of the study"),
        ("a/grad-cam + gate", "not among the study's refinements"),
        ("and(a/grad-cam, b/grad-cam)@t=0.3", "1 threshold"),
    ]:
        with pytest.raises(ConfigError, match="segmentation.source") as error:
            config({"source": source})
        assert message in str(error.value) and "\n" not in str(error.value)
    with pytest.raises(ConfigError, match="segmentation.filter"):
        config({"filter": {"min_area": 0.5, "max_area": 0.2}})
    with pytest.raises(ConfigError, match="volume recipe"):
        config({}, recipe={"kind": "volume", "size": [4, 16, 16]})
    ensemble = choose_source(config({"source": "and(a/grad-cam, b/grad-cam)@t=0.3|t=0.6"}), None, 0)
    assert [t.value for t in ensemble.thresholds] == [0.3, 0.6] and ensemble.rule == "and"


def test_ensemble_and_refined_sources_dispatch_to_the_study_rules():
    from WSSSCamLib.refine import Pipeline

    other = MAP.flip(-1)
    maps = {("a", "grad-cam"): MAP, ("b", "grad-cam"): other}
    probabilities = {"a": torch.tensor([0.9, 0.2]), "b": torch.tensor([0.7, 0.4])}
    cuts = (Threshold.parse("t=0.4"), Threshold.parse("t=0.6"))
    ensemble = SourceChoice("ensemble", "and(a/grad-cam, b/grad-cam)", "ensemble", tuple(maps), cuts, "and")
    made = source_masks(ensemble, None, maps, probabilities, False)
    assert torch.equal(made.masks, (MAP > 0.4) & (other > 0.6))
    assert torch.allclose(made.probability, torch.tensor([0.8, 0.3]))  # mean over the ensemble's models
    band = uncertain_pixels(made.values, made.cuts, 0.05)
    assert torch.equal(band, ((MAP - 0.4).abs() <= 0.05) | ((other - 0.6).abs() <= 0.05))
    refined = SourceChoice(
        "refined", "a", "grad-cam + gate", (("a", "grad-cam"),), (cuts[0],), steps=Pipeline.parse("gate")
    )
    made = source_masks(refined, None, maps, probabilities, False)
    gated = (MAP > 0.4) & torch.tensor([True, False]).view(2, 1, 1)  # the gate empties slice 1 (p = 0.2)
    assert torch.equal(made.masks, gated)


def _candidate(name: str, pseudo: list, keep: list) -> CandidateLabels:
    labels = torch.tensor(pseudo, dtype=torch.uint8)
    choice = SourceChoice("threshold", "a", name, (("a", name),), (Threshold.parse("t=0.5"),))
    return CandidateLabels(choice, labels, torch.tensor(keep), torch.ones(len(keep)), LabelCounts())


def test_pick_labels_by_hand():
    """Every candidate is scored on the same slices - every training slice with abnormality - a slice it drops
    counting 0 and an ignored pixel counting as background; the highest mean wins, ties go to the first listed,
    a candidate with no such slice scores NaN and loses."""
    reference = torch.tensor([[[1, 1, 0, 0]], [[0, 1, 1, 0]], [[0, 0, 0, 0]]], dtype=torch.uint8)  # 3 x 1 x 4
    half = _candidate("half", [[[1, 0, 0, 0]], [[0, 1, 1, 0]], [[0, 0, 0, 0]]], [True, True, True])
    # slice 0: 2*1/(1+2) = 2/3, slice 1: 1 -> mean 5/6
    exact_kept = _candidate("exact-on-kept", [[[1, 1, 0, 0]], [[1, 0, 0, 1]], [[0, 0, 0, 0]]], [True, False, True])
    # slice 0: 1, slice 1 dropped: 0 -> 1/2 (on its kept slices alone it would score 1 and win)
    ignored = _candidate("ignored", [[[IGNORE, 1, 0, 0]], [[0, 1, 1, 0]], [[0, 0, 0, 0]]], [True, True, True])
    # slice 0: the ignored lesion pixel counts as background: 2/3, slice 1: 1 -> 5/6, a tie with "half"
    best, summaries = pick_labels([exact_kept, half, ignored], reference)
    assert best == 1
    assert [s["chosen"] for s in summaries] == [False, True, False]
    assert [s["selection_dice"] for s in summaries] == pytest.approx([1 / 2, 5 / 6, 5 / 6])
    assert summaries[0]["dice_abnormal"] == 1.0  # the diagnostic on the kept slices, not what chooses
    assert summaries[1]["source"] == half.choice.describe()
    assert pick_labels([ignored, half], reference)[0] == 0  # a tie: the first listed
    no_lesion = reference.clone()
    no_lesion[:] = 0
    assert math.isnan(selection_dice(half.pseudo, half.keep, no_lesion))
    dropped = _candidate("dropped", [[[0, 0, 0, 0]]] * 3, [False, False, False])
    assert math.isnan(label_quality(dropped.pseudo[dropped.keep], reference[dropped.keep])["dice_abnormal"])
    assert pick_labels([dropped, half], reference)[0] == 1  # keeping nothing scores 0


def test_a_list_of_sources_is_checked_item_by_item():
    parsed = config({"source": ["b/grad-cam@p95", "a/grad-cam", "best"]})
    assert parsed.segmentation.sources() == ["b/grad-cam@p95", "a/grad-cam", "best"]
    assert config({"source": "best"}).segmentation.sources() == ["best"]
    with pytest.raises(ConfigError, match=r"segmentation.source\[1\].*c"):
        config({"source": ["best", "c/grad-cam"]})
    with pytest.raises(ConfigError, match="listed twice"):
        config({"source": ["best", "best"]})
    with pytest.raises(ConfigError, match="segmentation.source"):
        config({"source": []})
    named = choose_sources(config({"source": ["b/grad-cam@p95", "a/grad-cam@t=0.3"]}), None, 0)
    assert [c.describe() for c in named] == [
        "threshold b / grad-cam at p95 (named)",
        "threshold a / grad-cam at t=0.30 (named)",
    ]
    with pytest.raises(ValueError, match="2 candidates"):
        choose_source(config({"source": ["b/grad-cam@p95", "a/grad-cam@t=0.3"]}), None, 0)
