"""``wssscam export-nnunet``: a predict run's segment as an nnU-Net v2 raw dataset. nnU-Net v2's own
``verify_dataset_integrity`` accepts it; images and labels keep the geometry of NIfTI, NRRD and DICOM
inputs; label values and the ignore label follow the CAM; bad input is refused with one line and
nothing written; a rerun rewrites identical files."""

import json
import os
import shutil

import numpy as np
import pytest
from dicom_series import write_dicom_series

from WSSSCamLib.cli import main
from WSSSCamLib.data.datasets import read_decathlon
from WSSSCamLib.data.readers import read_volume, write_nifti, write_nrrd
from WSSSCamLib.data.recipe import SliceRecipe
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.data.volume import Volume, affine_from_geometry
from WSSSCamLib.predict.nnunet_export import ExportError, export_nnunet, nnunet_case_name
from WSSSCamLib.training import TrainConfig
from WSSSCamLib.training.crossval import cross_validate

_c, _s = np.cos(np.radians(20)), np.sin(np.radians(20))
OBLIQUE = affine_from_geometry([0.7, 0.9, 3.0], [12.0, -30.0, 5.0], np.array([[_c, -_s, 0], [_s, _c, 0], [0, 0, 1]]))
KINDS = {"nifti": "nifti_case.nii.gz", "nrrd": "nrrd_case.nrrd", "dicom": "dicom_case"}
SEGMENT = "layer-cam p90"


@pytest.fixture(scope="module")
def predicted(tmp_path_factory):
    """A small CNN (one fold, a few epochs) and a predict run, started in its own folder with relative
    paths, over one oblique phantom written as NIfTI, NRRD and a DICOM series (three cases)."""
    root = tmp_path_factory.mktemp("nnunet")
    data = write_synthetic_dataset(root / "data", cases=4, shape=(6, 32, 32), seed=3, lesion_radii=(0.3, 0.45))
    config = TrainConfig(epochs=3, patience=0, device="cpu", progress=False, augment=False)
    dataset = read_decathlon(data)
    cross_validate(
        dataset, root / "cv", "small-cnn", SliceRecipe(size=32, context_channel=0), config, k=2, only_folds=[0]
    )
    positive = next(c for c in dataset.cases if read_volume(c.mask).array.any())
    image = read_volume(positive.images[0]).array
    image = np.round(1000 * (image - image.min()) / (image.max() - image.min())).astype(np.float32)
    write_nifti(Volume(image, OBLIQUE), root / KINDS["nifti"])
    write_nrrd(Volume(image * 0.5 + 0.25, OBLIQUE), root / KINDS["nrrd"])  # not integral: stays float32
    write_dicom_series(root / KINDS["dicom"], count=6, rows=32, columns=32, pixels=image.astype(np.uint16))
    here = os.getcwd()
    os.chdir(root)
    try:
        arguments = ["predict", *KINDS.values(), "--checkpoint", "cv/fold0/model.pt", "--out", "run"]
        arguments += ["--methods", "grad-cam,layer-cam", "--ensemble", "or", "--threshold", "p90", "--progress", "none"]
        assert main(arguments) == 0
    finally:
        os.chdir(here)
    return root


def export(predicted, out, *extra, segment=SEGMENT, name="Pseudo"):
    return main(
        ["export-nnunet", str(predicted / "run"), "--segment", segment, "--out", str(out), "--id", "501"]
        + ["--name", name, *extra]
    )


def refusal(capsys, arguments) -> str:
    with pytest.raises(SystemExit) as caught:
        main(arguments)
    assert caught.value.code not in (0, None)
    message = str(caught.value.code)
    assert message.startswith("wssscam export-nnunet: ") and "\n" not in message
    return message


def test_nnunet_verifies_the_exported_dataset(predicted, tmp_path, capfd):
    """nnU-Net v2's own integrity check (the one `nnUNetv2_plan_and_preprocess --verify_dataset_integrity`
    runs) passes without errors or warnings, ignore label included."""
    pytest.importorskip("nnunetv2")
    from nnunetv2.experiment_planning.verify_dataset_integrity import verify_dataset_integrity
    from nnunetv2.utilities.label_handling.label_handling import LabelManager

    assert export(predicted, tmp_path, "--uncertain", "0.3,0.7") == 0
    folder = tmp_path / "Dataset501_Pseudo"
    capfd.readouterr()
    verify_dataset_integrity(str(folder), num_processes=1)
    output = capfd.readouterr().out
    assert "verify_dataset_integrity Done" in output
    assert "Error" not in output and "Warning" not in output and "WARNING" not in output, output
    manager = LabelManager(json.loads((folder / "dataset.json").read_text())["labels"], regions_class_order=None)
    assert manager.has_ignore_label and manager.ignore_label == 2 and manager.all_labels == [0, 1]
    # the check is not vacuous: a label shifted by 1 mm is reported
    label = folder / "labelsTr" / "nrrd_case.nii.gz"
    volume = read_volume(label)
    shifted = volume.ijk_to_ras.copy()
    shifted[0, 3] += 1.0
    write_nifti(Volume(volume.array, shifted), label, dtype=np.uint8)
    verify_dataset_integrity(str(folder), num_processes=1)
    assert "Origin mismatch" in capfd.readouterr().out


@pytest.mark.parametrize("kind", list(KINDS))
def test_images_and_labels_keep_the_input_geometry(predicted, tmp_path, kind):
    assert export(predicted, tmp_path) == 0
    folder = tmp_path / "Dataset501_Pseudo"
    case = nnunet_case_name(KINDS[kind].split(".")[0])
    source = read_volume(predicted / KINDS[kind])
    image = read_volume(folder / "imagesTr" / f"{case}_0000.nii.gz")
    label = read_volume(folder / "labelsTr" / f"{case}.nii.gz")
    for volume in (image, label):
        assert volume.shape_kji == source.shape_kji
        np.testing.assert_allclose(volume.ijk_to_ras, source.ijk_to_ras, atol=1e-5)
    np.testing.assert_array_equal(image.array, source.array)
    import nibabel

    stored = nibabel.load(str(folder / "imagesTr" / f"{case}_0000.nii.gz"))
    assert stored.get_data_dtype() == (np.float32 if kind == "nrrd" else np.int16)
    assert nibabel.load(str(folder / "labelsTr" / f"{case}.nii.gz")).get_data_dtype() == np.uint8
    result = json.loads((predicted / "run" / case / "result.json").read_text())
    mask = read_volume(predicted / "run" / case / result["files"]["masks"][SEGMENT])
    np.testing.assert_array_equal(label.array, (mask.array > 0).astype(np.float32))
    assert set(np.unique(label.array)) == {0.0, 1.0}


def test_dataset_json_follows_nnunet_v2(predicted, tmp_path):
    assert export(predicted, tmp_path) == 0
    folder = tmp_path / "Dataset501_Pseudo"
    description = json.loads((folder / "dataset.json").read_text())
    # channel names from the model card (its image channel; the 2.5D recipe's context channels follow it)
    card = json.loads((predicted / "cv" / "fold0" / "model.json").read_text())
    assert len(card["channel_names"]) == 3 and description["channel_names"] == {"0": card["channel_names"][0]}
    assert description["labels"] == {"background": 0, "lesion": 1}
    assert description["numTraining"] == 3 and description["file_ending"] == ".nii.gz"
    assert description["wssscam"]["segment"] == SEGMENT and description["wssscam"]["ignore"] is None
    assert sorted(p.name for p in (folder / "labelsTr").iterdir()) == sorted(
        f"{nnunet_case_name(n.split('.')[0])}.nii.gz" for n in KINDS.values()
    )
    assert len(list((folder / "imagesTr").iterdir())) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Dataset501_Pseudo"]  # nothing else under --out


def test_uncertain_cam_band_becomes_the_ignore_label(predicted, tmp_path):
    assert export(predicted, tmp_path, "--uncertain", "0.2,0.6") == 0
    folder = tmp_path / "Dataset501_Pseudo"
    description = json.loads((folder / "dataset.json").read_text())
    assert description["labels"] == {"background": 0, "lesion": 1, "ignore": 2}
    assert description["wssscam"]["ignore"]["cam"] == "layer-cam"  # the segment's own CAM, named
    some_ignored = False
    for name in KINDS.values():
        case = nnunet_case_name(name.split(".")[0])
        result = json.loads((predicted / "run" / case / "result.json").read_text())
        cam = read_volume(predicted / "run" / case / result["files"]["cams"]["layer-cam"]).array
        mask = read_volume(predicted / "run" / case / result["files"]["masks"][SEGMENT]).array > 0
        label = read_volume(folder / "labelsTr" / f"{case}.nii.gz").array
        band = (cam >= 0.2) & (cam <= 0.6)
        expected = np.where(band, 2, mask.astype(np.float32))
        np.testing.assert_array_equal(label, expected)
        some_ignored |= bool(band.any()) and bool((label == 1).any())
    assert some_ignored


def test_ensemble_segment_needs_a_named_cam(predicted, tmp_path, capsys):
    arguments = ["export-nnunet", str(predicted / "run"), "--segment", "or ensemble p90", "--out", str(tmp_path)]
    arguments += ["--id", "7", "--name", "E", "--uncertain", "0.3,0.7"]
    message = refusal(capsys, arguments)
    assert "--cam" in message and "grad-cam" in message and "layer-cam" in message
    assert not (tmp_path / "Dataset007_E").exists()
    assert main([*arguments, "--cam", "grad-cam"]) == 0
    description = json.loads((tmp_path / "Dataset007_E" / "dataset.json").read_text())
    assert description["wssscam"]["ignore"]["cam"] == "grad-cam"
    assert set(description["wssscam"]["ignore"]["files"].values()) == {
        "cams/small-cnn__grad-cam.nii.gz",
        "cams/small-cnn__grad-cam.nrrd",
    }


def test_rerun_rewrites_identical_files_and_drops_stale_cases(predicted, tmp_path):
    assert export(predicted, tmp_path, "--uncertain", "0.3,0.7") == 0
    folder = tmp_path / "Dataset501_Pseudo"
    first = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    (folder / "labelsTr" / "old.nii.gz").write_bytes(b"x")  # a case of an earlier export
    (folder / "imagesTr" / "old_0000.nii.gz").write_bytes(b"x")
    (folder / "imagesTr" / ".x_0000.nii.gz.abcd1234.tmp").write_bytes(b"")  # a killed writer's temporary
    assert export(predicted, tmp_path, "--uncertain", "0.3,0.7") == 0
    second = {p.relative_to(folder): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert second == first


def copy_run(predicted, tmp_path):
    """The predict run and its (relative) inputs copied to ``tmp_path``, without the checkpoint."""
    run = tmp_path / "run"
    shutil.copytree(predicted / "run", run)
    for name in KINDS.values():
        (shutil.copytree if (predicted / name).is_dir() else shutil.copy)(predicted / name, tmp_path / name)
    return run


def test_refusals_name_the_problem_and_write_nothing(predicted, tmp_path, capsys):
    out = tmp_path / "raw"
    base = ["export-nnunet", str(predicted / "run"), "--out", str(out)]
    cases = [
        ([*base, "--segment", "nope", "--id", "1", "--name", "A"], ["no segment 'nope'", SEGMENT, "or ensemble p90"]),
        ([*base, "--segment", SEGMENT, "--id", "1000", "--name", "A"], ["1..999"]),
        ([*base, "--segment", SEGMENT, "--id", "1", "--name", "a/b"], ["--name"]),
        ([*base, "--segment", SEGMENT, "--id", "1", "--name", "A", "--uncertain", "0.7,0.3"], ["low < high"]),
        ([*base, "--segment", SEGMENT, "--id", "1", "--name", "A", "--uncertain", "x"], ["low,high"]),
        ([*base, "--segment", SEGMENT, "--id", "1", "--name", "A", "--cam", "grad-cam"], ["--uncertain"]),
        (
            [*base, "--segment", SEGMENT, "--id", "1", "--name", "A", "--uncertain", "0.3,0.7", "--cam", "x"],
            ["no CAM 'x'", "grad-cam"],
        ),
        (
            [
                "export-nnunet",
                str(tmp_path / "none"),
                "--out",
                str(out),
                "--segment",
                SEGMENT,
                "--id",
                "1",
                "--name",
                "A",
            ],
            ["no such"],
        ),
    ]
    for arguments, words in cases:
        message = refusal(capsys, arguments)
        for word in words:
            assert word in message, (arguments, message)
    assert not out.exists()
    # another dataset already holds the id
    (out / "Dataset001_Other").mkdir(parents=True)
    assert "taken by Dataset001_Other" in refusal(capsys, [*base, "--segment", SEGMENT, "--id", "1", "--name", "A"])
    assert sorted(p.name for p in out.iterdir()) == ["Dataset001_Other"]


def test_missing_inputs_refused_and_card_optional(predicted, tmp_path, capsys):
    run = copy_run(predicted, tmp_path)
    # the run's relative paths are found from the folder it ran in (summary.json), not only from the current one
    export = export_nnunet(run, SEGMENT, tmp_path / "raw", 4, "D")
    assert export.channel_names == ["channel_0"]  # no model card beside the (absent) checkpoint
    (tmp_path / KINDS["nrrd"]).unlink()
    arguments = ["export-nnunet", str(run), "--segment", SEGMENT, "--out", str(tmp_path / "raw"), "--id", "4"]
    message = refusal(capsys, [*arguments, "--name", "D"])
    assert "input 'nrrd_case.nrrd' not found" in message


def test_uncommitted_and_missing_cases_are_refused(predicted, tmp_path, capsys):
    run = copy_run(predicted, tmp_path)
    arguments = [
        "export-nnunet",
        str(run),
        "--segment",
        SEGMENT,
        "--out",
        str(tmp_path / "raw"),
        "--id",
        "2",
        "--name",
        "B",
    ]
    (run / "nrrd_case" / "result.json").unlink()  # killed before the case was committed
    assert "case 'nrrd_case' is not committed" in refusal(capsys, arguments)
    summary = json.loads((run / "summary.json").read_text())
    summary["pending"] = ["nrrd_case"]
    (run / "summary.json").write_text(json.dumps(summary))
    assert "not committed yet (nrrd_case)" in refusal(capsys, arguments)
    (run / "summary.json").unlink()
    assert "summary.json: missing" in refusal(capsys, arguments)
    assert not (tmp_path / "raw").exists()


def test_case_ids_that_collide_or_escape_are_refused(predicted, tmp_path, capsys):
    run = copy_run(predicted, tmp_path)
    summary = json.loads((run / "summary.json").read_text())
    recorded = summary["cases"].pop("nifti_case")
    for case in ("Case a", "case_A"):  # both become nnU-Net case 'case_a' on a case-insensitive file system
        shutil.copytree(run / "nifti_case", run / case)
        result = json.loads((run / case / "result.json").read_text())
        result["case"] = case
        (run / case / "result.json").write_text(json.dumps(result))
        summary["cases"][case] = recorded
    (run / "summary.json").write_text(json.dumps(summary))
    arguments = [
        "export-nnunet",
        str(run),
        "--segment",
        SEGMENT,
        "--out",
        str(tmp_path / "raw"),
        "--id",
        "3",
        "--name",
        "C",
    ]
    message = refusal(capsys, arguments)
    assert "'Case a' and 'case_A'" in message and "rename one" in message
    summary["cases"] = {"../evil": recorded}
    (run / "summary.json").write_text(json.dumps(summary))
    assert "'../evil'" in refusal(capsys, arguments)
    assert not (tmp_path / "raw").exists()
    assert nnunet_case_name("TCGA_CS 4941/x") == "TCGA_CS_4941_x"


def test_library_call_returns_what_it_wrote(predicted, tmp_path):
    export = export_nnunet(predicted / "run", SEGMENT, tmp_path, 12, "Lib", uncertain=(0.3, 0.7))
    assert export.folder == tmp_path / "Dataset012_Lib"
    assert export.cases == {"nifti_case": "nifti_case", "nrrd_case": "nrrd_case", "dicom_case": "dicom_case"}
    assert export.cam == "layer-cam" and set(export.ignored) == set(export.cases.values())
    with pytest.raises(ExportError, match="CAMs lie in"):
        export_nnunet(predicted / "run", SEGMENT, tmp_path, 12, "Lib", uncertain=(0.3, 1.5))
