"""The study engine end to end on generated data: tables, resume after a crash, shards + merge, config errors."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.study import ConfigError, layout, load_config, merge_outputs, parse_config, run_study, unit_store

TRAIN = {"epochs": 2, "patience": 0, "batch_size": 16, "augment": False}


def config_dict(root, output):
    return {
        "dataset": str(root / "data"),
        "measures": str(root / "data" / "measures.csv"),
        "output": str(output),
        "folds": 2,
        "seed": 0,
        "device": "cpu",
        "recipe": {"size": 32},
        "models": [
            {"name": "a", "architecture": "small-cnn", "train": {**TRAIN, "seed": 1}},
            {
                "name": "b",
                "architecture": "small-cnn",
                "train": {**TRAIN, "seed": 2},
                "methods": ["grad-cam", "hires-cam"],
            },
        ],
        "methods": ["grad-cam", "grad-cam++", "hires-cam"],
        "thresholds": ["t=0.3", "t=0.6", "p95", "otsu"],
        "ensembles": [
            {"rule": "and", "members": ["a/grad-cam", "b/grad-cam"]},
            {"rule": "<", "members": ["a/hires-cam", "b/hires-cam"]},
        ],
        "overlays": 1,
    }


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A generated dataset and the two models trained per fold (the expensive part, done once)."""
    root = tmp_path_factory.mktemp("study")
    write_synthetic_dataset(root / "data", cases=6, shape=(6, 32, 32), seed=3)
    config = parse_config(config_dict(root, root / "trained"), "test")
    run_study(config, stages=["train"], progress=False)
    return root


def fresh(trained, tmp_path, name):
    """A new output folder holding only the trained models and folds."""
    output = tmp_path / name
    shutil.copytree(trained / "trained", output)
    return parse_config(config_dict(trained, output), "test")


@pytest.fixture(scope="module")
def single_run(trained, tmp_path_factory):
    output = tmp_path_factory.mktemp("single") / "out"
    shutil.copytree(trained / "trained", output)
    config = parse_config(config_dict(trained, output), "test")
    run_study(config, progress=False)
    return output


def test_single_run_writes_every_table_and_the_report(single_run):
    for name in (
        "slices.parquet",
        "results.parquet",
        "results.csv",
        "agreement.parquet",
        "threshold_grid.parquet",
        "cases.parquet",
        "provenance.json",
        "report.html",
        "figures/agreement.png",
        "figures/threshold_grid.png",
    ):
        assert (single_run / name).is_file(), name
    slices = pd.read_parquet(single_run / "slices.parquet")
    # every row counts every voxel of its 32 x 32 slice exactly once
    assert ((slices["tp"] + slices["fp"] + slices["fn"] + slices["tn"]) == 32 * 32).all()
    # one row per slice x configuration: no duplicates
    assert not slices.duplicated(["case", "slice", "model", "method", "result"]).any()
    results = pd.read_parquet(single_run / "results.parquet")
    pooled = results[results["case"] == "ALL"].set_index(["model", "method", "result", "metric"])["value"]
    assert pooled[("", "empty", "empty", "pooled_fg_dice")] == 0.0
    empty = slices[slices["kind"] == "empty"]
    background_iou = empty["tn"].sum() / (empty["tn"].sum() + empty["fn"].sum())
    assert pooled[("", "empty", "empty", "pooled_miou")] == pytest.approx(background_iou / 2)
    assert pooled[("", "empty", "empty", "pooled_dsc_miou")] == pytest.approx(background_iou / (1 + background_iou / 2))
    # model b computes only its own methods; ensembles appear once, with thresholds chosen on training cases
    assert set(results.loc[results["model"] == "b", "method"]) == {"grad-cam", "hires-cam"}
    assert set(results.loc[results["kind"] == "ensemble", "result"]) == {"train-grid"}
    grid = pd.read_parquet(single_run / "threshold_grid.parquet")
    assert grid.groupby(["fold", "ensemble"])["chosen"].sum().eq(1).all()
    assert len(grid) == 2 * 2 * 81  # folds x ensembles x 9 x 9 combinations
    agreement = pd.read_parquet(single_run / "agreement.parquet")
    assert set(agreement["kind"]) == {"methods", "models"} and agreement["value"].between(0, 1).all()
    provenance = json.loads((single_run / "provenance.json").read_text())
    assert len(provenance["checkpoints"]) == 4 and all(len(h) == 64 for h in provenance["checkpoints"].values())


def test_per_case_dice_matches_a_hand_computation_from_the_counts(single_run):
    slices = pd.read_parquet(single_run / "slices.parquet")
    results = pd.read_parquet(single_run / "results.parquet")
    rows = slices[(slices["model"] == "a") & (slices["method"] == "grad-cam") & (slices["result"] == "t=0.30")]
    case = rows["case"].iloc[0]
    mine = rows[rows["case"] == case]
    tp, fp, fn = mine["tp"].sum(), mine["fp"].sum(), mine["fn"].sum()
    expected = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0
    value = results[
        (results["case"] == case)
        & (results["model"] == "a")
        & (results["method"] == "grad-cam")
        & (results["result"] == "t=0.30")
        & (results["metric"] == "dice_volume")
    ]["value"]
    assert float(value.iloc[0]) == pytest.approx(expected)


def _sorted(frame):
    columns = list(frame.columns)
    return frame.sort_values(columns).reset_index(drop=True)


def test_resume_after_a_crash_gives_the_same_tables_without_duplicates(trained, tmp_path, single_run, monkeypatch):
    config = fresh(trained, tmp_path, "crashed")
    real_write = unit_store.write_unit
    calls = {"n": 0}

    def crash_after_three(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            # die half-way through a unit: its slices table is written, its marker is not
            unit_store.write_parquet(args[4], layout.unit_paths(args[0], args[1], args[2])["slices"])
            raise KeyboardInterrupt("injected crash")
        return real_write(*args, **kwargs)

    monkeypatch.setattr("WSSSCamLib.study.stages.cams.write_unit", crash_after_three)
    with pytest.raises(KeyboardInterrupt):
        run_study(config, progress=False)
    assert len(list((config.output / "units").glob("*/fold*.json"))) == 3
    monkeypatch.setattr("WSSSCamLib.study.stages.cams.write_unit", real_write)
    run_study(config, progress=False)
    for name in ("slices.parquet", "results.parquet", "agreement.parquet", "threshold_grid.parquet"):
        pd.testing.assert_frame_equal(
            _sorted(pd.read_parquet(config.output / name)), _sorted(pd.read_parquet(single_run / name))
        )


def test_shards_merged_equal_a_single_run(trained, tmp_path, single_run):
    shard_outputs = []
    for index in range(2):
        config = fresh(trained, tmp_path, f"shard{index}")
        assert run_study(config, shard=(index, 2), stages=["cams"], progress=False) is None
        shard_outputs.append(config.output)
    cases = [sorted(p.name for p in (out / "units").iterdir()) for out in shard_outputs]
    assert cases[0] and cases[1] and not set(cases[0]) & set(cases[1])  # disjoint parts of the cases
    merged = tmp_path / "merged"
    assert merge_outputs(merged, shard_outputs) == 6 * 2  # every case under both folds (test + train units)
    config = parse_config(config_dict(trained, merged), "test")
    run_study(config, stages=["report"], progress=False)
    for name in ("slices.parquet", "results.parquet", "agreement.parquet", "threshold_grid.parquet"):
        pd.testing.assert_frame_equal(
            _sorted(pd.read_parquet(merged / name)), _sorted(pd.read_parquet(single_run / name))
        )


def test_report_refuses_to_run_before_every_shard_finished(trained, tmp_path):
    config = fresh(trained, tmp_path, "partial")
    run_study(config, shard=(0, 2), stages=["cams"], progress=False)
    with pytest.raises(RuntimeError, match="units are not finished yet"):
        run_study(config, stages=["report"], progress=False)


def test_merge_refuses_outputs_of_different_studies(tmp_path):
    for name, folds in (("x", [["a"], ["b"]]), ("y", [["b"], ["a"]])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "folds.json").write_text(json.dumps({"folds": folds, "seed": 0}))
    with pytest.raises(ValueError, match="not shards of one study"):
        merge_outputs(tmp_path / "merged", [tmp_path / "x", tmp_path / "y"])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"colour": 1}, "unknown keys \\['colour'\\]"),
        ({"methods": ["grad-kam"]}, "methods"),
        ({"thresholds": ["t=banana"]}, "thresholds"),
        ({"ensembles": [{"rule": "xor", "members": ["a/grad-cam", "b/grad-cam"]}]}, "rule must be one of"),
        (
            {"ensembles": [{"rule": "and", "members": ["a/grad-cam", "c/grad-cam"]}]},
            "not <model>/<method> of a listed model",
        ),
        (
            {"ensembles": [{"rule": "and", "members": ["a/grad-cam", "b/grad-cam++"]}]},
            "b does not compute grad-cam\\+\\+",
        ),
        ({"models": [{"name": "a", "architecture": "resnet1000"}]}, "unknown architecture 'resnet1000'"),
        ({"folds": 1}, "folds must be at least 2"),
    ],
)
def test_config_errors_name_the_file_and_the_key(tmp_path, change, message):
    data = {**config_dict(tmp_path, tmp_path / "out"), **change}
    if "models" in change:
        data["ensembles"] = []
    path = tmp_path / "study.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ConfigError, match=message) as error:
        load_config(path)
    assert str(path) in str(error.value)


def test_yaml_config_with_relative_paths(tmp_path):
    (tmp_path / "study.yaml").write_text(
        "dataset: data\noutput: out\nmodels:\n  - {name: m, architecture: small-cnn}\nmethods: [grad-cam]\n"
    )
    config = load_config(tmp_path / "study.yaml")
    assert config.dataset == tmp_path / "data" and config.output == tmp_path / "out"
    assert [t.name for t in config.thresholds][:2] == ["t=0.10", "t=0.20"] and "otsu" in [
        t.name for t in config.thresholds
    ]
    assert np.isclose(config.fixed_thresholds(), np.arange(1, 10) / 10).all()


def test_checkpoints_tested_on_other_cases_are_refused(trained, tmp_path):
    config = fresh(trained, tmp_path, "swapped")
    folds = json.loads((config.output / "folds.json").read_text())
    folds["folds"] = folds["folds"][::-1]  # the study's fold 0 is the models' fold 1: training cases would leak
    swapped = tmp_path / "swapped_folds.json"
    swapped.write_text(json.dumps(folds))
    (config.output / "folds.json").unlink()
    config.folds_file = swapped
    with pytest.raises(ValueError, match="held out other cases than fold 0"):
        run_study(config, stages=["cams"], progress=False)
