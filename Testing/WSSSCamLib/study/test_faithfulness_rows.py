"""The study's faithfulness rows: sampling, rows equal to the library functions applied by hand on the
sampled slices (2D, and 3D at the function level), the units' tables (added to finished units without
recomputing them; recomputed when the settings change), and the report table against a hand aggregation."""

import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from WSSSCamLib.cams import CamEngine
from WSSSCamLib.cams.faithfulness import faithfulness_scores
from WSSSCamLib.data.slices import SliceSet
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.metrics import energy_pointing_game, pointing_game
from WSSSCamLib.report import faithfulness_table
from WSSSCamLib.study import layout, parse_config, run_study
from WSSSCamLib.study.config import FaithfulnessSpec
from WSSSCamLib.study.context import FoldModel
from WSSSCamLib.study.faithfulness_rows import (
    case_faithfulness,
    draw_order,
    eligible_slices,
    measure_maps,
    sample_positions,
)
from WSSSCamLib.study.provenance import config_fingerprint
from WSSSCamLib.study.units import CaseSlices, Timings


def test_draw_order_is_seeded_per_case_and_sampling_takes_the_first_eligible():
    order = draw_order("case-1", 10, 0)
    assert sorted(order.tolist()) == list(range(10)) and np.array_equal(order, draw_order("case-1", 10, 0))
    assert not np.array_equal(order, draw_order("case-2", 10, 0)) or not np.array_equal(
        order, draw_order("case-1", 10, 1)
    )
    order = np.array([4, 0, 3, 1, 2])
    eligible = np.array([True, False, True, True, True])
    assert sample_positions(eligible, order, 2).tolist() == [0, 4]  # 4 then 0 (1 is not eligible)
    assert sample_positions(eligible, order, None).tolist() == [0, 2, 3, 4]
    assert sample_positions(~eligible, order, 3).tolist() == [1]
    reference = torch.zeros(3, 2, 2, dtype=torch.bool)
    reference[1, 0, 0] = True
    assert eligible_slices("abnormal", reference, None).tolist() == [False, True, False]
    assert eligible_slices("positive", reference, torch.tensor([0.5, 0.2, 0.9])).tolist() == [False, False, True]
    assert eligible_slices("all", reference, None).tolist() == [True] * 3


def tiny_net(spatial: int) -> nn.Module:
    conv, pool = (nn.Conv2d, nn.AdaptiveAvgPool2d) if spatial == 2 else (nn.Conv3d, nn.AdaptiveAvgPool3d)
    torch.manual_seed(0)
    return nn.Sequential(conv(2, 4, 3, padding=1), nn.ReLU(), pool(1), nn.Flatten(), nn.Linear(4, 2)).eval()


@pytest.mark.parametrize("spatial", [2, 3])
def test_measure_maps_equals_the_library_functions(spatial):
    """2D slices and 3D volumes alike: per method x sample, the library functions on that method's maps."""
    model = tiny_net(spatial)
    shape = (6, 6) if spatial == 2 else (3, 4, 4)
    images = torch.randn(3, 2, *shape)
    maps = {"a": torch.rand(3, *shape), "b": torch.rand(3, *shape)}
    reference = torch.zeros(3, *shape, dtype=torch.bool)
    reference[0, ..., :2, :2] = True
    reference[2, ..., 2:, 1:] = True  # sample 1: empty reference -> NaN pointing and energy
    spec = FaithfulnessSpec(steps=5, baseline="minimum", tolerance=1.0, energy_region="mask")
    columns = measure_maps(model, images, maps, 1, spec, chunk=7, reference=reference)
    assert columns["method"].tolist() == ["a"] * 3 + ["b"] * 3 and columns["sample"].tolist() == [0, 1, 2] * 2
    for position, method in enumerate(("a", "b")):
        rows = slice(3 * position, 3 * position + 3)
        expected = faithfulness_scores(model, images, maps[method], 1, steps=5, baseline="minimum")
        for name, values in expected.items():
            np.testing.assert_allclose(columns[name][rows], values.double().numpy(), atol=1e-6)
        np.testing.assert_array_equal(columns["pointing"][rows], pointing_game(maps[method], reference, 1.0).numpy())
        np.testing.assert_allclose(
            columns["energy"][rows], energy_pointing_game(maps[method], reference, "mask").numpy()
        )
    assert np.isnan(columns["pointing"][1]) and np.isnan(columns["energy"][4])
    without = measure_maps(model, images, maps, 1, spec, chunk=64)
    assert np.isnan(without["pointing"]).all() and np.isnan(without["energy"]).all()


def test_case_rows_equal_the_library_functions_on_the_sampled_slices():
    """A case of 7 slices at native 12 x 12, network input 8 x 8; 2 abnormal slices drawn of 4."""
    model = tiny_net(2)
    engine = CamEngine(model, target_layer="0")
    fold_model = FoldModel("m", model, SimpleNamespace(num_classes=2), engine, ["grad-cam", "hires-cam"])
    torch.manual_seed(1)
    images = torch.randn(7, 2, 8, 8)
    reference = torch.zeros(7, 12, 12, dtype=torch.bool)
    for index in (1, 2, 4, 6):
        reference[index, 3 : 5 + index, 2:7] = True
    inputs = SliceSet(images, torch.zeros(7, dtype=torch.long), None, ["c"] * 7, torch.arange(10, 17))
    case = CaseSlices("c", inputs, reference, 1)
    spec = FaithfulnessSpec(steps=4, slices="abnormal", per_case=2, seed=5, methods=["hires-cam"])
    rows = case_faithfulness(case, 3, [fold_model], spec, 3, torch.device("cpu"), Timings())
    positions = sample_positions(reference.flatten(1).any(1).numpy(), draw_order("c", 7, 5), 2)
    assert len(positions) == 2 and set(positions) <= {1, 2, 4, 6}
    assert rows["slice"].tolist() == (positions + 10).tolist() and set(rows["method"]) == {"hires-cam"}
    assert rows[["case", "fold", "model"]].drop_duplicates().values.tolist() == [["c", 3, "m"]]
    maps = engine(images[positions], 1, ["hires-cam"]).maps["hires-cam"]
    scores = faithfulness_scores(model, images[positions], maps, 1, steps=4, baseline="minimum")
    for name, values in scores.items():
        np.testing.assert_allclose(rows[name], values.double().numpy(), atol=1e-6)
    native = F.interpolate(maps[:, None], size=(12, 12), mode="bilinear", align_corners=False)[:, 0].clamp(0, 1)
    np.testing.assert_array_equal(rows["pointing"], pointing_game(native, reference[positions]).numpy())
    np.testing.assert_allclose(rows["energy"], energy_pointing_game(native, reference[positions]).numpy(), atol=1e-9)
    assert rows.attrs["faithfulness"]["settings"]["steps"] == 4


def test_case_rows_of_a_three_dimensional_unit():
    """A 3D study's unit: 5 volumes of 2 x 3 x 6 x 6 under a 3D network, references on a 3 x 8 x 8 grid."""
    model = tiny_net(3)
    engine = CamEngine(model, target_layer="0")
    fold_model = FoldModel("m", model, SimpleNamespace(num_classes=2), engine, ["grad-cam"])
    torch.manual_seed(2)
    images = torch.randn(5, 2, 3, 6, 6)
    reference = torch.zeros(5, 3, 8, 8, dtype=torch.bool)
    reference[[0, 3], 1, 2:5, 2:6] = True
    inputs = SliceSet(images, torch.zeros(5, dtype=torch.long), None, ["v"] * 5, torch.arange(5))
    spec = FaithfulnessSpec(steps=3, slices="all", per_case=3, baseline="blur")
    rows = case_faithfulness(
        CaseSlices("v", inputs, reference, 1), 0, [fold_model], spec, 2, torch.device("cpu"), Timings()
    )
    positions = sample_positions(np.ones(5, dtype=bool), draw_order("v", 5, 0), 3)
    assert rows["slice"].tolist() == positions.tolist()
    maps = engine(images[positions], 1, ["grad-cam"]).maps["grad-cam"]
    scores = faithfulness_scores(model, images[positions], maps, 1, steps=3, baseline="blur")
    for name, values in scores.items():
        np.testing.assert_allclose(rows[name], values.double().numpy(), atol=1e-6)
    native = F.interpolate(maps[:, None], size=(3, 8, 8), mode="trilinear", align_corners=False)[:, 0].clamp(0, 1)
    expected = energy_pointing_game(native, reference[positions]).numpy()
    np.testing.assert_allclose(rows["energy"], expected, atol=1e-6)  # float32 maps, batched differently
    assert np.isnan(expected).sum() == np.isin(positions, [1, 2, 4]).sum()


TRAIN = {"epochs": 1, "patience": 0, "batch_size": 16, "augment": False, "seed": 1}


def study_dict(root, output, faithfulness=None):
    data = {
        "dataset": str(root / "data"),
        "output": str(output),
        "folds": 2,
        "device": "cpu",
        "recipe": {"size": 16},
        "models": [{"name": "a", "architecture": "small-cnn", "train": TRAIN}],
        "methods": ["grad-cam", "hires-cam"],
        "thresholds": ["t=0.5"],
        "overlays": 0,
    }
    return {**data, "faithfulness": faithfulness} if faithfulness is not None else data


@pytest.fixture(scope="module")
def plain_study(tmp_path_factory):
    """A finished study without the faithfulness key (units and report)."""
    root = tmp_path_factory.mktemp("faithful")
    write_synthetic_dataset(root / "data", cases=4, shape=(5, 16, 16), seed=2)
    run_study(parse_config(study_dict(root, root / "plain"), "test"), progress=False)
    return root


def test_the_key_adds_tables_to_finished_units_and_the_report(plain_study, tmp_path):
    output = tmp_path / "out"
    shutil.copytree(plain_study / "plain", output)
    before = {p: p.stat().st_mtime_ns for p in (output / "units").rglob("*") if p.is_file()}
    settings = {"steps": 3, "per_case": 2, "slices": "all", "seed": 1}
    config = parse_config(study_dict(plain_study, output, settings), "test")
    assert config_fingerprint(config) == config_fingerprint(parse_config(study_dict(plain_study, output), "test"))
    run_study(config, progress=False)
    after = {p: p.stat().st_mtime_ns for p in (output / "units").rglob("*") if p.is_file()}
    assert all(after[p] == t for p, t in before.items())  # units kept: only their faithfulness tables added
    tables = sorted(p for p in after if p.name.endswith(".faithfulness.parquet"))
    markers = [json.loads(m.read_text()) for m in layout.unit_markers(output)]
    assert len(tables) == sum(m["role"] == "test" for m in markers) == 4
    rows = pd.read_parquet(output / "faithfulness_slices.parquet")
    assert len(rows) == 4 * 2 * 2  # cases x slices drawn x methods
    table = pd.read_csv(output / "faithfulness.csv")
    for (model, method), group in rows.groupby(["model", "method"]):
        row = table[(table["model"] == model) & (table["method"] == method)].iloc[0]
        case_means = group.groupby("case")["deletion_auc"].mean()
        assert row["deletion_auc"] == pytest.approx(case_means.mean())
        assert row["deletion_auc_low"] <= row["deletion_auc"] <= row["deletion_auc_high"]
        assert row["increase_rate"] == pytest.approx(group.groupby("case")["increase"].mean().mean())
        pointing = group.dropna(subset=["pointing"]).groupby("case")["pointing"].mean()
        assert row["pointing_accuracy_cases"] == len(pointing)
        if len(pointing):
            assert row["pointing_accuracy"] == pytest.approx(pointing.mean())
    html = (output / "report.html").read_text()
    assert "Faithfulness and pointing on the held-out cases: up to 2 all slices per case (seed 1)" in html
    assert "deletion/insertion 3 steps" in html
    first = {p: p.stat().st_mtime_ns for p in tables}
    run_study(config, stages=["cams"], progress=False)  # nothing stale: nothing recomputed
    assert all(p.stat().st_mtime_ns == t for p, t in first.items())
    changed = parse_config(study_dict(plain_study, output, {**settings, "steps": 2}), "test")
    run_study(changed, stages=["cams"], progress=False)  # other settings: the tables again, the units kept
    assert all(p.stat().st_mtime_ns != t for p, t in first.items())
    assert all(p.stat().st_mtime_ns == t for p, t in before.items() if p.exists())


def test_report_refuses_stale_faithfulness_tables(plain_study, tmp_path):
    from WSSSCamLib.errors import NotReadyError

    output = tmp_path / "out"
    shutil.copytree(plain_study / "plain", output)
    config = parse_config(study_dict(plain_study, output, {"steps": 2}), "test")
    with pytest.raises(NotReadyError, match="no faithfulness table with the configured settings"):
        run_study(config, stages=["report"], progress=False)


def test_report_table_by_hand():
    rows = pd.DataFrame(
        {
            "case": ["x", "x", "y", "z"],
            "model": "m",
            "method": "k",
            "deletion_auc": [0.2, 0.4, 0.5, 0.9],
            "insertion_auc": [0.5, 0.5, 0.5, 0.5],
            "drop": [0.0, 1.0, 0.5, 0.5],
            "increase": [1.0, 0.0, 0.0, 1.0],
            "pointing": [1.0, np.nan, 0.0, np.nan],
            "energy": [0.6, np.nan, 0.2, np.nan],
        }
    )
    row = faithfulness_table(rows, resamples=200).iloc[0]
    assert (row["cases"], row["slices"]) == (3, 4)
    assert row["deletion_auc"] == pytest.approx((0.3 + 0.5 + 0.9) / 3)  # case means, then their mean
    assert row["average_drop"] == pytest.approx(0.5) and row["increase_rate"] == pytest.approx((0.5 + 0 + 1) / 3)
    assert (row["pointing_accuracy"], row["pointing_accuracy_cases"]) == (0.5, 2)  # z has no reference slice
    assert row["energy_share"] == pytest.approx(0.4)
    assert row["insertion_auc_low"] == pytest.approx(0.5) == row["insertion_auc_high"]
    assert 0.3 <= row["deletion_auc_low"] < row["deletion_auc"] < row["deletion_auc_high"] <= 0.9
