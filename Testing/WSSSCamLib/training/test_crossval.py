"""Case-level cross-validation through the CLI: per-fold cards, no leakage, resume without retraining."""

import json

import pytest

from WSSSCamLib.cli import main
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.training import load_checkpoint
from WSSSCamLib.training.crossval import SliceRecipe


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("cv") / "data", cases=6, shape=(6, 32, 32), seed=1)


def test_train_command_cross_validates_and_resumes(dataset, tmp_path, capsys):
    out = tmp_path / "run"
    args = [
        "train",
        str(dataset),
        "--out",
        str(out),
        "--folds",
        "3",
        "--size",
        "32",
        "--epochs",
        "2",
        "--patience",
        "0",
        "--context-channel",
        "phantom",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    folds = json.loads((out / "folds.json").read_text())["folds"]
    assert sorted(c for f in folds for c in f) == sorted(f"phantom_{i:03d}" for i in range(6))
    for fold in range(3):
        model, card = load_checkpoint(out / f"fold{fold}" / "model.pt", device="cpu")
        split = card.split
        assert set(split["test"]) == set(folds[fold])
        assert not set(split["train"]) & set(split["test"])  # no case in two splits
        assert card.in_channels == 3 and card.channel_names[1:] == ["phantom (previous slice)", "phantom (next slice)"]
        assert SliceRecipe.from_card(card) == SliceRecipe(size=32, context_channel=0)
        assert 0.0 <= card.validation["test_auc"] <= 1.0
    table = (out / "cv_results.csv").read_text().splitlines()
    assert len(table) == 4 and table[0].startswith("fold,test_cases")
    first = capsys.readouterr().out
    assert "mean" in first
    stamps = [(out / f"fold{f}" / "model.pt").stat().st_mtime_ns for f in range(3)]
    assert main(args) == 0  # resumes: every fold is finished, nothing is retrained
    assert [(out / f"fold{f}" / "model.pt").stat().st_mtime_ns for f in range(3)] == stamps


def test_train_command_names_an_unknown_channel(dataset, tmp_path):
    with pytest.raises(SystemExit, match="no channel 'T2'"):
        main(["train", str(dataset), "--out", str(tmp_path / "x"), "--context-channel", "T2"])


def test_each_fold_has_an_epoch_log_and_its_held_out_metrics_in_the_card(dataset, tmp_path):
    import csv

    from WSSSCamLib.data.datasets import read_decathlon
    from WSSSCamLib.training import TrainConfig
    from WSSSCamLib.training.crossval import cross_validate

    config = TrainConfig(epochs=3, patience=2, device="cpu", progress=False)
    report = cross_validate(
        read_decathlon(dataset), tmp_path / "cv", "small-cnn", SliceRecipe(size=24), config, k=2, only_folds=[1]
    )
    rows = list(csv.DictReader((tmp_path / "cv" / "fold1" / "train_log.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, len(rows) + 1)) and 1 <= len(rows) <= 3
    assert all(
        float(r["train_loss"]) > 0 and float(r["seconds"]) > 0 and r["val_auc"] != "" for r in rows
    )  # inner validation
    _, card = load_checkpoint(tmp_path / "cv" / "fold1" / "model.pt", device="cpu")
    held_out = report.folds[0]
    assert card.validation["test_auc"] == held_out.auc and card.validation["test_accuracy"] == held_out.accuracy
    assert (
        card.validation["test_slices"] == held_out.test_slices
        and card.validation["test_positive_slices"] == held_out.test_positive_slices
    )
    assert [h["epoch"] for h in card.training["history"]] == [int(r["epoch"]) for r in rows]
