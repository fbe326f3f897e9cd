"""``Slicer --python-script Resources/Scripts/run_wssscam.py ...`` run the way the tests can: with
plain Python and slicer-core (real ``slicer`` package, no application), so the script's exit must
not need ``slicer.app``."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from WSSSCamLib.data.datasets import read_decathlon
from WSSSCamLib.data.recipe import SliceRecipe
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.training import TrainConfig
from WSSSCamLib.training.crossval import cross_validate

SCRIPT = Path(__file__).resolve().parents[2] / "Resources" / "Scripts" / "run_wssscam.py"


def run_script(*arguments, cwd):
    return subprocess.run(
        [sys.executable, str(SCRIPT), *map(str, arguments)], cwd=cwd, capture_output=True, text=True, timeout=600
    )


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("script")
    write_synthetic_dataset(root / "data", cases=4, shape=(4, 24, 24), seed=5)
    cross_validate(
        read_decathlon(root / "data"),
        root / "cv",
        "small-cnn",
        SliceRecipe(size=24),
        TrainConfig(epochs=1, patience=0, device="cpu", progress=False),
        k=2,
        only_folds=[0],
    )
    return root


def test_predict_through_the_script_exits_zero_and_writes_the_files(data, tmp_path):
    done = run_script(
        "predict",
        data / "data",
        "--checkpoint",
        data / "cv" / "fold0" / "model.pt",
        "--out",
        tmp_path / "out",
        "--progress",
        "json",
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1])["event"] == "done"
    assert len(list((tmp_path / "out").glob("*/result.json"))) == 4


def test_study_through_the_script_and_a_user_error_exits_one_with_one_line(data, tmp_path):
    config = {
        "dataset": str(data / "data"),
        "output": str(tmp_path / "study"),
        "folds": 2,
        "device": "cpu",
        "recipe": {"size": 24},
        "models": [{"name": "a", "architecture": "small-cnn", "train": {"epochs": 1, "patience": 0}}],
        "methods": ["grad-cam"],
        "thresholds": ["t=0.5"],
        "overlays": 0,
    }
    (tmp_path / "study.json").write_text(json.dumps(config))
    done = run_script("study", tmp_path / "study.json", "--stages", "train", "--quiet", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "study" / "models" / "a" / "fold1" / "model.pt").is_file()
    failed = run_script(
        "predict",
        tmp_path / "missing.nii.gz",
        "--checkpoint",
        data / "cv" / "fold0" / "model.pt",
        "--out",
        tmp_path / "o",
        cwd=tmp_path,
    )
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"wssscam predict: {tmp_path / 'missing.nii.gz'}: no such file or folder"
    ]
