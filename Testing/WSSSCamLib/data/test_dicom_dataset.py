"""A folder of DICOM series plus a CSV of labels as a dataset: classifiers train on it, a study maps
it, and predict keeps the series' geometry (oblique, anisotropic) in its outputs, DICOM SEG included."""

import json

import numpy as np
import pandas as pd
import pytest
from dicom_series import write_dicom_series

from WSSSCamLib.cli import main
from WSSSCamLib.data.datasets import load_case, read_csv_dataset
from WSSSCamLib.data.readers import read_volume, write_nifti
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.data.volume import Volume
from WSSSCamLib.study import parse_config, run_study


@pytest.fixture(scope="module")
def dicom_dataset(tmp_path_factory):
    """6 phantom cases as DICOM series (6 slices of 24 x 24) with NIfTI masks on the series' grid."""
    root = tmp_path_factory.mktemp("dicomdata")
    write_synthetic_dataset(root / "phantoms", cases=6, shape=(6, 24, 24), seed=11, lesion_radii=(0.3, 0.45))
    folder = root / "dicom"
    folder.mkdir()
    rows = ["case,label"]
    for number in range(6):
        case = f"p{number}"
        image = read_volume(root / "phantoms" / "imagesTr" / f"phantom_{number:03d}_0000.nii.gz").array
        mask = read_volume(root / "phantoms" / "labelsTr" / f"phantom_{number:03d}.nii.gz").array
        pixels = np.round(1000 * (image - image.min()) / (np.ptp(image) or 1)).astype(np.uint16)
        write_dicom_series(folder / case, count=6, rows=24, columns=24, pixels=pixels)
        series = read_volume(folder / case)
        write_nifti(Volume(mask, series.ijk_to_ras), folder / f"{case}_mask.nii.gz")
        rows.append(f"{case},{int(mask.any())}")
    (root / "labels.csv").write_text("\n".join(rows) + "\n")
    return root


def test_a_dicom_dataset_trains_studies_and_predicts_with_its_geometry(dicom_dataset, tmp_path):
    root = dicom_dataset
    dataset = read_csv_dataset(root / "dicom", root / "labels.csv")
    loaded = load_case(dataset.cases[0])
    assert loaded.image.shape_kji == (6, 24, 24) and loaded.mask.same_grid(loaded.image)
    assert not np.allclose(
        loaded.image.ijk_to_ras[:3, :3], np.diag(np.diag(loaded.image.ijk_to_ras[:3, :3]))
    )  # oblique
    assert (
        main(
            [
                "train",
                str(root / "dicom"),
                "--csv",
                str(root / "labels.csv"),
                "--out",
                str(tmp_path / "cv"),
                "--folds",
                "2",
                "--size",
                "24",
                "--epochs",
                "2",
                "--patience",
                "0",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    config = parse_config(
        {
            "dataset": str(root / "dicom"),
            "csv": str(root / "labels.csv"),
            "output": str(tmp_path / "study"),
            "folds": 2,
            "device": "cpu",
            "recipe": {"size": 24},
            "models": [{"name": "a", "architecture": "small-cnn", "train": {"epochs": 1, "patience": 0}}],
            "methods": ["grad-cam"],
            "thresholds": ["t=0.5"],
            "overlays": 0,
        },
        "test",
    )
    run_study(config, progress=False)
    results = pd.read_parquet(tmp_path / "study" / "results.parquet")
    assert set(results.loc[results["case"] != "ALL", "case"]) == {f"p{n}" for n in range(6)}
    assert (
        main(
            [
                "predict",
                str(root / "dicom" / "p0"),
                "--checkpoint",
                str(tmp_path / "cv" / "fold0" / "model.pt"),
                "--out",
                str(tmp_path / "predict"),
                "--progress",
                "none",
            ]
        )
        == 0
    )
    record = json.loads((tmp_path / "predict" / "p0" / "result.json").read_text())
    cam = read_volume(tmp_path / "predict" / "p0" / record["files"]["cams"]["grad-cam"])
    assert cam.shape_kji == loaded.image.shape_kji
    np.testing.assert_allclose(cam.ijk_to_ras, loaded.image.ijk_to_ras, atol=1e-5)
    assert record["files"]["dicom_seg"] == "p0.seg.dcm" and (tmp_path / "predict" / "p0" / "p0.seg.dcm").is_file()
