"""Report tables from small hand-made study tables (schema of /work/notes/study_schema.md)."""

import math

import numpy as np
import pandas as pd
import pytest

from WSSSCamLib.report import (
    agreement_summary,
    chosen_thresholds,
    correlation_table,
    main_table,
    markdown_table,
    threshold_table,
)
from WSSSCamLib.report.tables import correlation_matrix, result_sort_key

ENSEMBLE = "and(small-cnn/grad-cam, resnet18/grad-cam)"
# (model, method, kind, result) -> (pooled_dsc_miou, pooled_fg_dice, dice_mean_abnormal_slices)
POOLED = {
    (ENSEMBLE, "ensemble", "ensemble", "t=0.50|t=0.70"): (0.703, 0.41, 0.45),
    ("small-cnn", "grad-cam", "threshold", "otsu"): (0.670, 0.30, 0.33),  # ties with t=0.50: t=0.50 wins
    ("small-cnn", "grad-cam", "threshold", "t=0.30"): (0.600, 0.20, 0.25),
    ("small-cnn", "grad-cam", "threshold", "t=0.50"): (0.670, 0.35, 0.38),
    ("small-cnn", "grad-cam", "threshold", "t=0.70"): (0.650, 0.32, 0.36),
    ("resnet18", "grad-cam", "threshold", "t=0.30"): (0.620, 0.22, 0.27),
    ("resnet18", "grad-cam", "threshold", "t=0.50"): (0.640, 0.28, 0.31),
    ("resnet18", "grad-cam", "threshold", "t=0.70"): (0.685, 0.37, 0.40),
    ("", "empty", "empty", "empty"): (0.646, 0.0, 0.0),
}
METRICS = ("pooled_dsc_miou", "pooled_fg_dice", "dice_mean_abnormal_slices")


def make_results(pooled=POOLED) -> pd.DataFrame:
    rows = []
    for (model, method, kind, result), values in pooled.items():
        for metric, value in zip(METRICS, values):
            rows.append(
                {
                    "case": "ALL",
                    "fold": -1,
                    "model": model,
                    "method": method,
                    "result": result,
                    "kind": kind,
                    "metric": metric,
                    "value": value,
                }
            )
        # a per-case row that must not enter the pooled tables
        rows.append(
            {
                "case": "c1",
                "fold": 0,
                "model": model,
                "method": method,
                "result": result,
                "kind": kind,
                "metric": "pooled_dsc_miou",
                "value": 0.99,
            }
        )
    return pd.DataFrame(rows)


def test_main_table_orders_configurations_and_picks_the_best_result():
    table = main_table(make_results())
    assert list(table.columns) == [
        "model",
        "method",
        "kind",
        "best_result",
        "pooled_dsc_miou",
        "pooled_fg_dice",
        "dice_mean_abnormal_slices",
    ]
    assert table["kind"].tolist() == ["empty", "threshold", "threshold", "ensemble"]
    assert table["model"].tolist() == ["", "small-cnn", "resnet18", ENSEMBLE]
    assert table["best_result"].tolist() == ["empty", "t=0.50", "t=0.70", "t=0.50|t=0.70"]
    for _, row in table.iterrows():  # every value is the input of that same result (exactly)
        expected = POOLED[(row["model"], row["method"], row["kind"], row["best_result"])]
        assert tuple(row[list(METRICS)]) == expected
    assert table["pooled_dsc_miou"].dtype == np.float64


def test_main_table_by_another_metric_and_nan_never_wins():
    pooled = dict(POOLED)
    pooled[("resnet18", "grad-cam", "threshold", "t=0.90")] = (math.nan, math.nan, math.nan)
    table = main_table(make_results(pooled), metric="pooled_fg_dice")
    assert table["best_result"].tolist() == ["empty", "t=0.50", "t=0.70", "t=0.50|t=0.70"]
    assert table.columns[4] == "pooled_fg_dice" and table.columns[5] == "pooled_dsc_miou"
    with pytest.raises(ValueError, match="pooled_miou"):
        main_table(make_results(), metric="pooled_miou")
    with pytest.raises(ValueError, match="missing column"):
        main_table(make_results().drop(columns="kind"))


def test_threshold_table_is_the_matrix_of_inputs_in_threshold_order():
    matrix = threshold_table(make_results(), "pooled_dsc_miou")
    assert list(matrix.index) == [("small-cnn", "grad-cam"), ("resnet18", "grad-cam")]
    assert list(matrix.columns) == ["t=0.30", "t=0.50", "t=0.70", "otsu"]
    assert matrix.loc[("resnet18", "grad-cam"), "t=0.70"] == 0.685
    assert matrix.loc[("small-cnn", "grad-cam"), "t=0.30"] == 0.600
    assert math.isnan(matrix.loc[("resnet18", "grad-cam"), "otsu"])
    assert sorted(["otsu", "p95", "t=0.70", "t=0.10", "mean", "x|y", "empty"], key=result_sort_key) == [
        "t=0.10",
        "t=0.70",
        "p95",
        "mean",
        "otsu",
        "x|y",
        "empty",
    ]


def test_agreement_summary_quartiles_by_hand():
    agreement = pd.DataFrame(
        {
            "case": "c1",
            "slice": range(7),
            "fold": 0,
            "kind": ["models"] * 2 + ["methods"] * 5,
            "group": ["grad-cam"] * 2 + ["small-cnn"] * 5,
            "result": "t=0.50",
            "value": [0.5, math.nan, 1.0, 0.2, 0.8, 0.4, 0.6],
        }
    )
    summary = agreement_summary(agreement)
    assert summary[["kind", "group", "n"]].values.tolist() == [["methods", "small-cnn", 5], ["models", "grad-cam", 1]]
    first = summary.iloc[0]
    assert first["median"] == pytest.approx(0.6) and first["q1"] == pytest.approx(0.4)
    assert (
        first["q3"] == pytest.approx(0.8) and first["iqr"] == pytest.approx(0.4) and first["mean"] == pytest.approx(0.6)
    )
    assert summary.iloc[1]["median"] == 0.5


AREAS = {"small-cnn": [10, 20, 30, 40, 50], "resnet18": [50, 40, 30, 20, 10], "vgg": [7, 7, 7, 7, 7]}
CASES = pd.DataFrame(
    {
        "case": [f"c{i}" for i in range(5)],
        "fold": [0, 0, 1, 1, 1],
        "label": 1,
        "has_mask": True,
        "slices": 2,
        "liquid_loss": [1.0, 2.0, 3.0, 5.0, 4.0],
    }
)


def make_slices() -> pd.DataFrame:
    rows = []
    for model, areas in AREAS.items():
        for i, area in enumerate(areas):
            for s, share in enumerate((0.3, 0.7)):  # two slices per case; area split into tp and fp
                part = round(area * share, 1)
                rows.append(
                    {
                        "case": f"c{i}",
                        "slice": s,
                        "fold": 0,
                        "role": "test",
                        "model": model,
                        "method": "grad-cam",
                        "result": "t=0.50",
                        "kind": "threshold",
                        "tp": part / 2,
                        "fp": part / 2,
                        "fn": 1,
                        "tn": 100,
                        "probability": 0.5,
                    }
                )
            rows.append(
                {
                    "case": f"c{i}",
                    "slice": 0,
                    "fold": 0,
                    "role": "train",
                    "model": model,
                    "method": "grad-cam",
                    "result": "t=0.50",
                    "kind": "threshold",
                    "tp": 1000 * i,
                    "fp": 0,
                    "fn": 0,
                    "tn": 0,
                    "probability": 0.5,
                }
            )
    return pd.DataFrame(rows)


def test_correlation_from_slices_and_from_results_agree_with_hand_rho():
    # rho(small-cnn, liquid_loss): ranks 1..5 vs 1,2,3,5,4 -> 1 - 6*2/(5*24) = 0.9
    table = correlation_table(make_slices(), CASES, "liquid_loss")
    rho = correlation_matrix(table)
    assert list(rho.columns) == ["small-cnn / grad-cam", "resnet18 / grad-cam", "vgg / grad-cam", "liquid_loss"]
    assert rho.loc["small-cnn / grad-cam", "liquid_loss"] == pytest.approx(0.9, abs=1e-12)
    assert rho.loc["resnet18 / grad-cam", "liquid_loss"] == pytest.approx(-0.9, abs=1e-12)
    assert rho.loc["small-cnn / grad-cam", "resnet18 / grad-cam"] == pytest.approx(-1.0, abs=1e-12)
    assert rho.loc["small-cnn / grad-cam", "small-cnn / grad-cam"] == pytest.approx(1.0)
    assert math.isnan(rho.loc["vgg / grad-cam", "liquid_loss"])  # constant area
    assert set(table["n"]) == {5}
    results = pd.DataFrame(
        [
            {
                "case": f"c{i}",
                "fold": 0,
                "model": m,
                "method": "grad-cam",
                "result": "t=0.50",
                "kind": "threshold",
                "metric": "area_voxels",
                "value": float(a),
            }
            for m, areas in AREAS.items()
            for i, a in enumerate(areas)
        ]
    )
    from_results = correlation_matrix(correlation_table(results, CASES, "liquid_loss"))
    pd.testing.assert_frame_equal(from_results, rho)
    with pytest.raises(ValueError, match="t=0.30"):
        correlation_table(results, CASES, None, result="t=0.30")


def test_chosen_thresholds_rows():
    grid = pd.DataFrame(
        {
            "fold": [1, 1, 0, 0],
            "ensemble": ["e"] * 4,
            "rule": "and",
            "t1": [0.3, 0.5, 0.3, 0.5],
            "t2": [0.7, 0.7, 0.7, 0.7],
            "score": [0.1, 0.2, 0.3, 0.1],
            "chosen": [False, True, True, False],
        }
    )
    chosen = chosen_thresholds(grid)
    assert chosen[["fold", "t1", "score"]].values.tolist() == [[0, 0.3, 0.3], [1, 0.5, 0.2]]


def test_markdown_table_exact():
    df = pd.DataFrame({"name": ["a|b", "c"], "value": [0.5, math.nan], "n": [1, 2]})
    assert markdown_table(df) == ("| name | value | n |\n| --- | ---: | ---: |\n| a\\|b | 0.500 | 1 |\n| c |  | 2 |")
    indexed = pd.DataFrame({"v": [0.25]}, index=pd.Index(["x"], name="k"))
    assert markdown_table(indexed, floatfmt=".1f") == "| k | v |\n| --- | ---: |\n| x | 0.2 |"
