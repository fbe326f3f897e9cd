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
    args = ["train", str(dataset), "--out", str(out), "--folds", "3", "--size", "32", "--epochs", "2", "--patience", "0",
            "--context-channel", "phantom", "--device", "cpu"]
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
