"""Decathlon and CSV datasets: discovery of channels and masks, and clear errors for mismatches."""

import json

import numpy as np
import pytest

from WSSSCamLib.data.datasets import DatasetError, load_case, read_csv_dataset, read_decathlon
from WSSSCamLib.data.readers import write_nifti
from WSSSCamLib.data.volume import Volume


def make_decathlon(root, cases=("a", "b"), channels=2, label_shape=(4, 5, 6)):
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    affine = np.diag([0.5, 0.5, 2.0, 1.0])
    for n, case in enumerate(cases):
        for c in range(channels):
            write_nifti(
                Volume(np.full((4, 5, 6), 10 * n + c, np.float32), affine), root / "imagesTr" / f"{case}_{c:04d}.nii.gz"
            )
        mask = np.zeros(label_shape, np.float32)
        mask[1, 2, 3] = 1
        write_nifti(Volume(mask, affine), root / "labelsTr" / f"{case}.nii.gz")
    meta = {
        "modality": {str(c): f"m{c}" for c in range(channels)},
        "labels": {"0": "background", "1": "lesion"},
        "training": [{"image": f"./imagesTr/{c}.nii.gz", "label": f"./labelsTr/{c}.nii.gz"} for c in cases],
    }
    (root / "dataset.json").write_text(json.dumps(meta))


def test_decathlon_layout_channels_and_labels(tmp_path):
    make_decathlon(tmp_path)
    dataset = read_decathlon(tmp_path)
    assert [c.case_id for c in dataset.cases] == ["a", "b"]
    assert dataset.channel_names == ["m0", "m1"] and dataset.class_names == ["background", "lesion"]
    loaded = load_case(dataset.case("b"))
    assert loaded.image.array.shape == (2, 4, 5, 6)
    assert loaded.image.array[1].max() == 11
    assert loaded.mask.array[1, 2, 3] == 1
    np.testing.assert_allclose(loaded.image.spacing, [0.5, 0.5, 2.0])


def test_label_image_shape_mismatch_names_the_files(tmp_path):
    make_decathlon(tmp_path, label_shape=(4, 5, 7))
    with pytest.raises(
        DatasetError, match=r"labelsTr/a.nii.gz: label shape \(4, 5, 7\).*does not match image shape \(4, 5, 6\)"
    ):
        load_case(read_decathlon(tmp_path).case("a"))


def test_missing_channel_file_and_missing_description(tmp_path):
    make_decathlon(tmp_path / "d")
    (tmp_path / "d" / "imagesTr" / "b_0001.nii.gz").unlink()
    with pytest.raises(DatasetError, match="case 'b' has no image file .*b_0001.nii.gz"):
        read_decathlon(tmp_path / "d")
    with pytest.raises(DatasetError, match="dataset.json: missing"):
        read_decathlon(tmp_path)


def test_csv_dataset_with_external_measure(tmp_path):
    for case in ("p1", "p2"):
        write_nifti(Volume(np.ones((2, 3, 4), np.float32)), tmp_path / f"{case}.nii.gz")
    (tmp_path / "cases.csv").write_text("case,label,liquid_loss\np1,1,3.5\np2,0,\n")
    dataset = read_csv_dataset(tmp_path, tmp_path / "cases.csv")
    assert [(c.case_id, c.label, c.measures) for c in dataset.cases] == [("p1", 1, {"liquid_loss": 3.5}), ("p2", 0, {})]
    (tmp_path / "bad.csv").write_text("case,label\np3,1\n")
    with pytest.raises(DatasetError, match="line 2: no volume for case 'p3'"):
        read_csv_dataset(tmp_path, tmp_path / "bad.csv")
