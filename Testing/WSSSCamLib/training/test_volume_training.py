"""`wssscam train --recipe-kind volume`: a 3D classifier on slabs, its card, and the flags it refuses."""

import json

import pytest

from WSSSCamLib.cli import main
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.training import load_checkpoint


def test_train_on_slabs_writes_3d_models_with_their_recipe(tmp_path):
    data = write_synthetic_dataset(tmp_path / "data", cases=4, shape=(6, 16, 16), seed=1)
    out = tmp_path / "run"
    argv = ["train", str(data), "--out", str(out), "--recipe-kind", "volume", "--slab", "3", "--size", "8"]
    assert (
        main([*argv, "--folds", "2", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--patience", "0"]) == 0
    )
    model, card = load_checkpoint(out / "fold0" / "model.pt")
    assert card.spatial_dims == 3 and card.input_size == [3, 8, 8]
    recipe = card.recipe
    assert (recipe["kind"], list(recipe["size"]), recipe["axis"], recipe["slab"], recipe["stride"]) == (
        "volume",
        [3, 8, 8],
        "K",
        3,
        None,
    )
    # 2 slabs per case (slices 0-2 and 3-5): every held-out slab is evaluated
    result = json.loads((out / "fold0" / "result.json").read_text())
    assert result["test_slices"] == 2 * len(result["test_cases"])


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--slab", "8"], "need --recipe-kind volume"),
        (["--recipe-kind", "volume", "--stride", "2"], "--stride needs --slab"),
    ],
)
def test_volume_flags_are_refused_where_they_mean_nothing(tmp_path, extra, message):
    data = write_synthetic_dataset(tmp_path / "data", cases=4, shape=(6, 16, 16), seed=1)
    with pytest.raises(SystemExit, match=message):
        main(["train", str(data), "--out", str(tmp_path / "run"), *extra])
