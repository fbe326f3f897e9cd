"""The gap closed by a pseudo-label network, by hand on a made-up headline, from both anchors."""

import math

import pandas as pd
import pytest

from WSSSCamLib.report.gap import gap_closed

METRICS = ("dsc", "fg_dice", "dice_abnormal", "dice_case")


def _row(configuration, kind, model, value, best=False, best_refined=False):
    return {
        "configuration": configuration,
        "kind": kind,
        "model": model,
        "best": best,
        "best_refined": best_refined,
        **{metric: value for metric in METRICS},
    }


def test_gap_from_the_best_cam_and_from_the_best_refined_cam():
    headline = pd.DataFrame(
        [
            _row("Empty", "empty", "empty", 0.5),
            _row("a/grad-cam", "threshold", "a", 0.6, best=True),
            _row("a/grad-cam + gate", "refined", "a", 0.7, best_refined=True),
            _row("pseudo-label U-Net", "segmentation", "pseudo-label U-Net", 0.8),
            _row("supervised U-Net (fully supervised upper bound)", "segmentation", "supervised U-Net", 0.9),
        ]
    )
    gap = gap_closed(headline)
    assert len(gap) == 2 * len(METRICS) and set(gap["network"]) == {"pseudo-label U-Net"}
    by_anchor = gap.groupby("anchor")["gap_closed"].unique()
    assert by_anchor["best CAM"] == pytest.approx([(0.8 - 0.6) / (0.9 - 0.6)])  # 2/3
    assert by_anchor["best refined CAM"] == pytest.approx([(0.8 - 0.7) / (0.9 - 0.7)])  # 1/2
    assert set(gap.loc[gap["anchor"] == "best refined CAM", "anchor_configuration"]) == {"a/grad-cam + gate"}


def test_undefined_when_the_supervised_network_does_not_beat_the_anchor_and_one_anchor_without_refinements():
    headline = pd.DataFrame(
        [
            _row("a/grad-cam", "threshold", "a", 0.6, best=True),
            _row("pseudo-label U-Net", "segmentation", "pseudo-label U-Net", 0.7),
            _row("supervised U-Net (fully supervised upper bound)", "segmentation", "supervised U-Net", 0.55),
        ]
    )
    gap = gap_closed(headline)
    assert set(gap["anchor"]) == {"best CAM"} and all(math.isnan(v) for v in gap["gap_closed"])
    assert gap_closed(headline[headline["kind"] != "segmentation"]).empty
