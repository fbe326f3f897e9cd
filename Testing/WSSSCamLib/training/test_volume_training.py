"""`wssscam train --recipe-kind volume`: a 3D classifier on slabs, its card, the flags it refuses, and its
CAMs over whole volumes (`volume_cams`, `wssscam predict`), slab maps laid back on their native voxels."""

import dataclasses
import json

import pytest
import torch

from WSSSCamLib.cli import main
from WSSSCamLib.data.datasets import load_case, read_decathlon
from WSSSCamLib.data.readers import read_volume
from WSSSCamLib.data.recipe import recipe_from_card
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.inference import cam_engine_for, slice_cams, volume_cams
from WSSSCamLib.training import load_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("volume-train")
    data = write_synthetic_dataset(root / "data", cases=4, shape=(6, 16, 16), seed=1)
    argv = ["train", str(data), "--out", str(root / "run"), "--recipe-kind", "volume", "--slab", "3", "--size", "8"]
    assert (
        main([*argv, "--folds", "2", "--epochs", "1", "--batch-size", "4", "--device", "cpu", "--patience", "0"]) == 0
    )
    return root


def test_train_on_slabs_writes_3d_models_with_their_recipe(trained):
    model, card = load_checkpoint(trained / "run" / "fold0" / "model.pt")
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
    result = json.loads((trained / "run" / "fold0" / "result.json").read_text())
    assert result["test_slices"] == 2 * len(result["test_cases"])


def test_volume_cams_average_overlapping_slab_maps_on_native_voxels(trained):
    model, card = load_checkpoint(trained / "run" / "fold0" / "model.pt")
    card = dataclasses.replace(card, recipe={**card.recipe, "stride": 2})  # slabs start at 0, 2 and 3 of 6
    case = read_decathlon(trained / "data").cases[0]
    volume = load_case(case).image
    result = volume_cams(volume, model, card, ["grad-cam"], batch_size=2, device="cpu")
    recipe = recipe_from_card(card)
    image, _ = recipe.preprocess()(volume, None)
    items = recipe.items("x", image, None, 0)
    maps, p = slice_cams(cam_engine_for(model, card), items.images, ["grad-cam"], 1, (3, 16, 16))
    slab = maps["grad-cam"]
    # slices 0-1: slab 0 only; slice 2: slabs 0 and 1; slice 3-4: slabs 1 and 2; slice 5: slab 2
    expected = torch.stack(
        [slab[0, 0], slab[0, 1], (slab[0, 2] + slab[1, 0]) / 2, (slab[1, 1] + slab[2, 0]) / 2]
        + [(slab[1, 2] + slab[2, 1]) / 2, slab[2, 2]]
    )
    torch.testing.assert_close(result.maps["grad-cam"], expected, atol=1e-6, rtol=0)
    assert result.maps["grad-cam"].shape == volume.shape_kji
    torch.testing.assert_close(result.probabilities[2], (p[0] + p[1]) / 2)


def test_predict_writes_volume_model_cams_in_the_input_geometry(trained):
    case = read_decathlon(trained / "data").cases[0]
    out = trained / "predict"
    checkpoint = str(trained / "run" / "fold0" / "model.pt")
    argv = ["predict", str(case.images[0]), "--checkpoint", checkpoint, "--out", str(out), "--progress", "none"]
    assert main([*argv, "--device", "cpu"]) == 0
    folder = next(p for p in out.iterdir() if (p / "result.json").is_file())
    record = json.loads((folder / "result.json").read_text())
    cam = read_volume(folder / record["files"]["cams"]["grad-cam"])
    assert cam.shape_kji == load_case(case).image.shape_kji


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
