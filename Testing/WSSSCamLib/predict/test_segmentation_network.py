"""``wssscam predict`` with a segmentation checkpoint (a ``monai-unet`` card, classes [background,
abnormal]): its own segment equals the network's argmax computed by hand through the card's recipe,
geometry kept (NIfTI and DICOM), metrics rows against a reference, beside classifier CAMs, resumable,
bad checkpoints refused with one line."""

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F
from dicom_series import write_dicom_series

from WSSSCamLib.cli import main
from WSSSCamLib.data.datasets import read_decathlon
from WSSSCamLib.data.readers import read_volume, write_nifti
from WSSSCamLib.data.recipe import SliceRecipe, dataset_slices
from WSSSCamLib.data.segmentation_files import read_seg_nrrd
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.data.volume import Volume, affine_from_geometry
from WSSSCamLib.models.zoo import build_model
from WSSSCamLib.training.checkpoint import ModelCard, load_checkpoint, save_checkpoint

_c, _s = np.cos(np.radians(20)), np.sin(np.radians(20))
OBLIQUE = affine_from_geometry([0.7, 0.9, 3.0], [12.0, -30.0, 5.0], np.array([[_c, -_s, 0], [_s, _c, 0], [0, 0, 1]]))
SIZE = 16  # the U-Net's input side: the 32 x 32 slices are shrunk for the network and its output grown back


def unet_card(channels: int = 1, classes: int = 2) -> ModelCard:
    names = ["background", "abnormal"] if classes == 2 else [f"class{c}" for c in range(classes)]
    return ModelCard(
        "monai-unet",
        channels,
        classes,
        names,
        ["phantom"] * channels,
        input_size=[SIZE, SIZE],
        recipe={"size": SIZE, "axis": "K"},
    )


@pytest.fixture(scope="module")
def unet(tmp_path_factory):
    """A generated dataset and a U-Net trained for 12 steps on its slices' true masks (a few seconds),
    saved with the project's checkpoint writer and a segmentation card."""
    root = tmp_path_factory.mktemp("segnet")
    data = write_synthetic_dataset(root / "data", cases=4, shape=(6, 32, 32), seed=3, lesion_radii=(0.3, 0.45))
    slices = dataset_slices(read_decathlon(data), SliceRecipe(size=SIZE), progress=False)
    torch.manual_seed(0)
    network = build_model("monai-unet", 1, 2)
    optimiser = torch.optim.Adam(network.parameters(), 3e-2)
    for _ in range(12):
        loss = F.cross_entropy(network(slices.images), slices.masks.long(), weight=torch.tensor([1.0, 3.0]))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    save_checkpoint(network.eval(), unet_card(), root / "unet.pt")
    torch.manual_seed(1)
    classifier = ModelCard(
        "small-cnn", 1, 2, ["normal", "lesion"], ["phantom"], input_size=[SIZE, SIZE], recipe={"size": SIZE}
    )
    save_checkpoint(build_model("small-cnn", 1, 2), classifier, root / "cnn.pt")
    return root


def lesion_case(unet):
    """The first phantom with a lesion: (image 6 x 32 x 32 scaled to 0..1000, its true mask)."""
    for case in read_decathlon(unet / "data").cases:
        mask = read_volume(case.mask).array > 0
        if mask.any():
            image = read_volume(case.images[0]).array
            return (1000 * (image - image.min()) / (image.max() - image.min())).astype(np.float32), mask
    raise AssertionError("no phantom with a lesion")


def by_hand(unet, image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mask, probability) of the U-Net on a K x J x I image: the recipe's normalisation, each axial slice
    resized bilinearly to 16 x 16, softmax, the probabilities resized bilinearly back to 32 x 32, argmax."""
    network, card = load_checkpoint(unet / "unet.pt", device="cpu")
    normalised, _ = SliceRecipe.from_card(card).preprocess()(Volume(image, OBLIQUE), None)
    slices = torch.from_numpy(normalised.array)[:, None]  # K x 1 x J x I
    small = F.interpolate(slices, size=(SIZE, SIZE), mode="bilinear", align_corners=False)
    with torch.no_grad():
        probabilities = torch.softmax(network(small), dim=1)
    native = F.interpolate(probabilities, size=image.shape[1:], mode="bilinear", align_corners=False)
    return (native.argmax(1) == 1).numpy(), native[:, 1].numpy()


def run(arguments: list, out) -> int:
    return main(["predict", *[str(a) for a in arguments], "--out", str(out), "--progress", "none"])


@pytest.mark.parametrize("kind", ["nifti", "dicom"])
def test_the_segment_is_the_networks_argmax_by_hand_on_the_input_grid(unet, tmp_path, kind):
    image, truth = lesion_case(unet)
    if kind == "nifti":
        scan = tmp_path / "scan.nii.gz"
        write_nifti(Volume(image, OBLIQUE), scan)
    else:
        scan = tmp_path / "scan"
        write_dicom_series(scan, count=6, rows=32, columns=32, pixels=image.round().astype(np.uint16))
        image = read_volume(scan).array  # the rounded pixels as the reader gives them
    source = read_volume(scan)
    write_nifti(Volume(truth.astype(np.uint8), source.ijk_to_ras), tmp_path / "truth.nii.gz")
    out = tmp_path / "out"
    assert (
        run(
            [
                scan,
                "--checkpoint",
                f"unet={unet / 'unet.pt'}",
                "--methods",
                "",
                "--reference",
                tmp_path / "truth.nii.gz",
            ],
            out,
        )
        == 0
    )
    folder = out / "scan"
    record = json.loads((folder / "result.json").read_text())
    assert record["segments"] == ["unet segmentation"] and record["files"]["cams"] == {} and record["models"] == {}
    expected, probability = by_hand(unet, image)
    assert expected.any() and not expected.all()  # a non-trivial segment is compared
    suffix = ".nii.gz" if kind == "nifti" else ".nrrd"
    mask = read_volume(folder / record["files"]["masks"]["unet segmentation"])
    written = read_volume(folder / record["files"]["probabilities"]["unet"])
    assert record["files"]["probabilities"]["unet"] == f"cams/unet__probability{suffix}"
    for volume in (mask, written):
        assert volume.shape_kji == source.shape_kji
        np.testing.assert_allclose(volume.ijk_to_ras, source.ijk_to_ras, atol=1e-5)
    np.testing.assert_array_equal(mask.array > 0, expected)
    assert written.array.dtype == np.float32
    np.testing.assert_allclose(written.array, probability, atol=1e-5)
    segments, _ = read_seg_nrrd(folder / "scan.seg.nrrd")
    assert list(segments) == ["unet segmentation"]
    np.testing.assert_array_equal(segments["unet segmentation"] > 0, expected)
    both = np.logical_and(expected, truth).sum()
    metrics = pd.read_csv(out / "metrics.csv")
    assert list(metrics["result"]) == ["unet segmentation"]
    assert metrics["dice"][0] == pytest.approx(2 * both / (expected.sum() + truth.sum()))
    assert metrics["voxels"][0] == expected.sum() and metrics["reference_voxels"][0] == truth.sum()
    assert record["segmentations"]["unet"]["class_names"] == ["background", "abnormal"]
    if kind == "dicom":
        hd = pytest.importorskip("highdicom")
        seg = hd.seg.segread(folder / record["files"]["dicom_seg"])
        assert [s.SegmentLabel for s in seg.SegmentSequence] == ["unet segmentation"]
        assert np.asarray(seg.pixel_array).any()
    else:
        assert record["files"]["dicom_seg"] is None


def test_beside_classifier_cams_with_seg_methods_resumable_and_sharded(unet, tmp_path, capsys):
    image, _ = lesion_case(unet)
    write_nifti(Volume(image, OBLIQUE), tmp_path / "a.nii.gz")
    write_nifti(Volume(image[::-1].copy(), OBLIQUE), tmp_path / "b.nii.gz")
    checkpoints = ["--checkpoint", f"cnn={unet / 'cnn.pt'}", "--checkpoint", f"unet={unet / 'unet.pt'}"]
    common = [tmp_path / "a.nii.gz", tmp_path / "b.nii.gz", *checkpoints, "--methods", "grad-cam,seg-grad-cam"]
    common += ["--box", "0,0,0,32,32,6", "--ensemble", "or", "--threshold", "p90"]
    out = tmp_path / "out"
    assert run([*common, "--shard", "0/2"], out) == 0
    assert (out / "a" / "result.json").is_file() and not (out / "b").exists()
    record = json.loads((out / "a" / "result.json").read_text())
    # the ensemble combines the CAMs only; the network's own segment comes last
    assert record["segments"] == ["cnn grad-cam p90", "unet seg-grad-cam p90", "or ensemble p90", "unet segmentation"]
    assert set(record["files"]["cams"]) == {"cnn grad-cam", "unet seg-grad-cam"} and set(record["models"]) == {
        "cnn",
        "unet",
    }
    expected, _ = by_hand(unet, image)
    segments, _ = read_seg_nrrd(out / "a" / "a.seg.nrrd")
    np.testing.assert_array_equal(segments["unet segmentation"] > 0, expected)
    capsys.readouterr()
    assert main(["predict", *map(str, common), "--out", str(out), "--progress", "json"]) == 0  # the whole run
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    done = {e["case"]: e["skipped"] for e in events if e["event"] == "case_done"}
    assert done == {"a": True, "b": False}  # the shard's case is not redone
    fractions = [e["fraction"] for e in events]
    assert fractions == sorted(fractions) and {e["model"] for e in events if e["event"] == "batch"} == {"cnn", "unet"}
    summary = json.loads((out / "summary.json").read_text())
    assert summary["pending"] == [] and [m["segmentation_network"] for m in summary["models"]] == [False, True]


def test_the_fingerprint_of_classifier_runs_is_unchanged_and_a_new_network_redoes_the_case(unet, tmp_path):
    from WSSSCamLib.predict import PredictOptions, cases_from_paths, load_models, predict
    from WSSSCamLib.predict.run import case_fingerprint

    image, _ = lesion_case(unet)
    write_nifti(Volume(image, OBLIQUE), tmp_path / "a.nii.gz")
    cases = cases_from_paths([tmp_path / "a.nii.gz"])
    classifier = load_models([unet / "cnn.pt"], "cpu")
    options = PredictOptions(("grad-cam",), device="cpu")
    payload = {
        "case": cases[0].describe(),
        "models": [[m.name, m.sha256, m.card_sha256] for m in classifier],
        "options": options.describe(),
        "format": 1,
    }
    import hashlib

    assert (
        case_fingerprint(cases[0], classifier, options)
        == hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()
    )
    models = load_models([unet / "unet.pt"], "cpu")
    only = PredictOptions((), device="cpu")
    assert predict(cases, models, tmp_path / "out", only).computed == ["a"]
    assert predict(cases, models, tmp_path / "out", only).skipped == ["a"]
    torch.manual_seed(5)
    save_checkpoint(build_model("monai-unet", 1, 2), unet_card(), tmp_path / "other.pt")
    other = load_models([("unet", tmp_path / "other.pt")], "cpu")
    assert predict(cases, other, tmp_path / "out", only).computed == ["a"]


@pytest.mark.parametrize(
    ("make", "arguments", "message"),
    [
        ("one_class", ["--methods", ""], r"one.json: a segmentation network needs at least two output classes"),
        ("two_channels", ["--methods", ""], r"1 channel\(s\), but the model monai-unet was trained on"),
        ("classifier", ["--methods", ""], r"cnn.pt: small-cnn is a classifier and needs a CAM method"),
        ("classifier", ["--methods", "seg-grad-cam", "--box", "0,0,0,4,4,2"], r"explain segmentation networks"),
    ],
)
def test_bad_segmentation_checkpoints_are_refused_with_one_line(unet, tmp_path, make, arguments, message):
    image, _ = lesion_case(unet)
    write_nifti(Volume(image, OBLIQUE), tmp_path / "scan.nii.gz")
    if make == "one_class":
        checkpoint = save_checkpoint(build_model("monai-unet", 1, 1), unet_card(classes=1), tmp_path / "one.pt")
    elif make == "two_channels":
        checkpoint = save_checkpoint(build_model("monai-unet", 2, 2), unet_card(channels=2), tmp_path / "two.pt")
    else:
        checkpoint = unet / "cnn.pt"
    with pytest.raises(SystemExit) as stop:
        run([tmp_path / "scan.nii.gz", "--checkpoint", checkpoint, *arguments], tmp_path / "out")
    text = str(stop.value.code)
    assert text.startswith("wssscam predict: ") and "\n" not in text and re.search(message, text), text
    assert not list((tmp_path / "out").rglob("result.json"))
