"""A 3D volume-level (slab) study end to end on generated phantoms: train, cams, report."""

import json
from pathlib import Path

import pandas as pd
import pytest

from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.study import ConfigError, load_config, parse_config, run_study
from WSSSCamLib.training import load_checkpoint

GRID = [4, 16, 16]


def config_dict(root):
    return {
        "dataset": str(root / "data"),
        "output": str(root / "out"),
        "folds": 2,
        "seed": 0,
        "device": "cpu",
        "recipe": {"kind": "volume", "size": GRID, "slab": 4, "axis": "K"},
        "models": [
            {"name": "a", "architecture": "small-cnn", "train": {"epochs": 2, "patience": 0, "batch_size": 8}},
            {"name": "b", "architecture": "small-cnn-plain", "train": {"epochs": 1, "patience": 0, "batch_size": 8}},
        ],
        "methods": ["grad-cam", "layer-cam"],
        "thresholds": ["t=0.3", "t=0.6", "otsu"],
        "ensembles": [{"rule": "and", "members": ["a/grad-cam", "b/grad-cam"]}],
        "overlays": 1,
    }


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("volume")
    # 10 slices: slabs start at 0, 4 and 6 (the last ends at slice 9); 24 x 24 in-plane, resampled to 16 x 16
    write_synthetic_dataset(root / "data", cases=6, shape=(10, 24, 24), seed=5)
    run_study(parse_config(config_dict(root), "test"), progress=False)
    return root


def test_rows_are_slabs_counting_their_native_voxels(study):
    out = study / "out"
    slices = pd.read_parquet(out / "slices.parquet")
    test = slices[slices["role"] == "test"]
    assert set(test["slice"]) == {0, 1, 2}
    assert ((test["tp"] + test["fp"] + test["fn"] + test["tn"]) == 4 * 24 * 24).all()
    assert not test.duplicated(["case", "slice", "model", "method", "result"]).any()
    # the Empty rows' FN are the reference voxels of each native slab, counted by hand from the label files
    from WSSSCamLib.data.datasets import load_case, read_decathlon

    dataset = read_decathlon(study / "data")
    empty = test[test["kind"] == "empty"].set_index(["case", "slice"])["fn"]
    for case in dataset.cases:
        mask = load_case(case).mask.array > 0
        for slab, start in enumerate([0, 4, 6]):
            assert empty[(case.case_id, slab)] == mask[start : start + 4].sum()


def test_the_same_tables_figures_and_report_as_a_slice_study(study):
    out = study / "out"
    for name in ("results.csv", "agreement.parquet", "threshold_grid.parquet", "cases.parquet", "report.html"):
        assert (out / name).is_file(), name
    assert list((out / "figures").glob("*.png"))
    assert list(out.rglob("overlay_*.png"))  # the example overlay: a slice of the best 3D map's slab
    html = (out / "report.html").read_text()
    assert "Volume recipe: the items measured" in html and "slabs of 4 slices" in html
    results = pd.read_parquet(out / "results.parquet")
    assert {"pooled_dsc_miou", "dice_mean_abnormal_slices", "dice_volume"} <= set(results["metric"])
    assert set(results.loc[results["kind"] == "ensemble", "result"]) == {"train-grid"}
    agreement = pd.read_parquet(out / "agreement.parquet")
    assert set(agreement["kind"]) == {"methods", "models"} and agreement["value"].between(0, 1).all()


def test_folds_are_by_case_and_models_are_3d_with_the_recipe_in_their_card(study):
    out = study / "out"
    folds = json.loads((out / "folds.json").read_text())
    held = [set(f["test"]) if isinstance(f, dict) else set(f) for f in folds["folds"]]
    assert held[0].isdisjoint(held[1]) and len(held[0] | held[1]) == 6
    model, card = load_checkpoint(out / "models" / "a" / "fold0" / "model.pt")
    assert card.spatial_dims == 3 and card.input_size == GRID
    assert card.recipe["kind"] == "volume" and card.recipe["slab"] == 4
    assert set(card.split["test"]).isdisjoint(card.split["train"])


@pytest.mark.parametrize(
    "recipe, message",
    [
        ({"kind": "volume", "size": [8, 32]}, "recipe.size: expected three sizes"),
        ({"kind": "volume", "stride": 2}, "recipe.stride: needs a slab"),
        ({"kind": "volume", "slab": "8"}, "recipe.slab"),
        ({"kind": "slice"}, "recipe.kind"),
        ({"kind": "volume", "context_channel": 0}, "unknown key 'context_channel'"),
    ],
)
def test_volume_recipe_config_errors_name_the_key(tmp_path, recipe, message):
    values = config_dict(tmp_path)
    values["recipe"] = recipe
    with pytest.raises(ConfigError, match=message):
        parse_config(values, "test")


def test_the_readme_lgg_slab_study_configuration_is_valid():
    root = Path(__file__).resolve().parents[3]
    config = load_config(root / "Resources" / "Studies" / "lgg_slabs.yaml")
    assert config.recipe == {"kind": "volume", "size": [8, 64, 64], "slab": 8, "axis": "K"}
    assert config.split_file.name == "lgg_fixed_split.json"
