"""The README's main job end to end (small sizes here): data generated, two models trained per fold,
every classifier CAM method, thresholds, ensembles, metrics, figures and the report."""

import json

import pandas as pd

from WSSSCamLib.cams import METHODS
from WSSSCamLib.cli import main
from WSSSCamLib.demo import CLASSIFIER_METHODS, print_summary, run_demo


def test_demo_runs_a_whole_study_and_reports(tmp_path, capsys):
    summary = run_demo(
        tmp_path, device="cpu", epochs=2, segmentation_epochs=2, cases=6, shape=(6, 32, 32), progress=False
    )
    study = tmp_path / "study"
    assert (study / "report.html").is_file() and summary["report"] == str(study / "report.html")
    assert json.loads((tmp_path / "summary.json").read_text()) == summary
    results = pd.read_parquet(study / "results.parquet")
    single = results[results["kind"] == "threshold"]
    assert set(single.loc[single["model"] == "small-cnn", "method"]) == set(CLASSIFIER_METHODS)
    assert set(single.loc[single["model"] == "plain-cnn", "method"]) == set(CLASSIFIER_METHODS)
    refined = results[results["kind"] == "refined"]
    assert set(refined["method"].str.split(" + ", regex=False).str[0]) == {"layer-cam-fused"}
    assert refined["method"].nunique() == 2 and summary["best_refined"]
    assert all(b["dsc_low"] <= b["dsc"] <= b["dsc_high"] for b in summary["best_refined"])
    networks = {entry["configuration"]: entry for entry in summary["segmentation"]}
    assert set(networks) == {"pseudo-label U-Net", "supervised U-Net (fully supervised upper bound)"}
    assert all(0 <= n["dsc"] <= 1 and n["dsc_low"] <= n["dsc"] <= n["dsc_high"] for n in networks.values())
    assert (study / "gap_closed.csv").is_file() and set(summary["gap_closed"]) == {"best CAM", "best refined CAM"}
    assert all(set(v) == {"dsc", "fg_dice", "dice_abnormal", "dice_case"} for v in summary["gap_closed"].values())
    faithfulness = pd.read_csv(study / "faithfulness.csv")
    assert set(faithfulness["method"]) == {"grad-cam", "layer-cam-fused"}
    assert results.loc[results["kind"] == "ensemble", "model"].nunique() == 4
    assert summary["empty"] > 0 and summary["best"] and all(0 <= b["dsc"] <= 1 for b in summary["best"])
    assert all(b["dsc_low"] <= b["dsc"] <= b["dsc_high"] for b in summary["best"])
    assert summary["training_masks"] == 4 and summary["a_priori"]["rule"] == "t=0.50"
    prior = summary["a_priori"]  # a range over all single maps: no configuration picked by its test result
    assert prior["lowest"] <= prior["median"] <= prior["highest"] and prior["configurations"] == 2 * len(
        CLASSIFIER_METHODS
    )
    for figure in ("agreement.png", "threshold_grid.png", "thresholds.png", "correlation.png"):
        assert (study / "figures" / figure).is_file(), figure
    print_summary(summary)
    out = capsys.readouterr().out
    assert (
        "best refined CAM" in out
        and "Empty baseline" in out
        and "report.html" in out
        and "a priori, no masks (t=0.50 for all" in out
    )


def test_methods_command_lists_every_method(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in METHODS)
