"""Bad input, data integrity: every fault that used to give a silent wrong result is refused before any
training, with an error naming the file and the problem (all-zero channels and cases are errors)."""

import json
import shutil

import nibabel
import numpy as np
import pytest

from WSSSCamLib.cli import main
from WSSSCamLib.data.datasets import (
    DatasetError,
    load_case,
    read_csv_dataset,
    read_decathlon,
)
from WSSSCamLib.data.readers import (
    VolumeReadError,
    read_dicom_series,
    read_volume,
    write_nifti,
)
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.data.volume import Volume


def write_series(folder, ks):
    """A tiny axial MR series, one file per slice (files in reverse slice order)."""
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

    folder.mkdir(parents=True, exist_ok=True)
    for order, k in enumerate(reversed(ks)):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = MRImageStorage
        meta.MediaStorageSOPInstanceUID = generate_uid()
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds = Dataset()
        ds.file_meta = meta
        ds.SOPClassUID, ds.SOPInstanceUID = MRImageStorage, meta.MediaStorageSOPInstanceUID
        ds.SeriesInstanceUID, ds.Modality = "1.2.3.4", "MR"
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated = ds.BitsStored = 16
        ds.HighBit, ds.PixelRepresentation = 15, 0
        ds.Rows, ds.Columns = 4, 6
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.ImagePositionPatient = [0, 0, 2.0 * k]
        ds.PixelSpacing = [1.0, 1.0]
        ds.PixelData = np.full((4, 6), k + 1, np.uint16).tobytes()
        ds.save_as(folder / f"im{order}.dcm", enforce_file_format=True)


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("bad") / "data", cases=2, shape=(3, 8, 8), seed=0)


@pytest.fixture
def dataset(source, tmp_path):
    """A fresh copy to damage."""
    return shutil.copytree(source, tmp_path / "data")


def replace_label(root, array, affine=None):
    """Overwrite case phantom_000's label map (by default on its image's grid)."""
    if affine is None:
        affine = read_volume(root / "imagesTr" / "phantom_000_0000.nii.gz").ijk_to_ras
    write_nifti(Volume(np.asarray(array, np.float32), affine), root / "labelsTr" / "phantom_000.nii.gz")


def first_case(root):
    return read_decathlon(root).cases[0]


def label_like(root):
    return read_volume(root / "labelsTr" / "phantom_000.nii.gz").array.copy()


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, r"label values \[-1\] are not declared; the dataset's labels are \[0, 1\]"),
        (0.3, "label value 0.3 is not an integer"),
        (2, r"label values \[2\] are not declared"),
    ],
)
def test_label_values_outside_the_declared_set(dataset, value, message):
    mask = np.zeros((3, 8, 8))
    mask[1, 2:4, 2:4] = value
    replace_label(dataset, mask)
    with pytest.raises(DatasetError, match=message) as error:
        load_case(first_case(dataset))
    assert str(error.value).startswith(str(dataset / "labelsTr" / "phantom_000.nii.gz"))


def test_declared_multi_class_labels_are_accepted(dataset):
    meta = json.loads((dataset / "dataset.json").read_text())
    meta["labels"] = {"0": "background", "1": "oedema", "2": "tumour"}
    (dataset / "dataset.json").write_text(json.dumps(meta))
    mask = np.zeros((3, 8, 8))
    mask[1, 2, 2], mask[1, 3, 3] = 1, 2
    replace_label(dataset, mask)
    assert load_case(first_case(dataset)).mask.array.max() == 2


def write_raw_nifti(path, array, affine):
    """A NIfTI with exactly this affine in its sform (no qform), as a careless converter writes it."""
    header = nibabel.Nifti1Image(np.zeros((1, 1, 1), np.float32), np.eye(4)).header.copy()
    for row, name in enumerate(("srow_x", "srow_y", "srow_z")):
        header[name] = affine[row]
    header["sform_code"], header["qform_code"] = 1, 0
    nibabel.save(nibabel.Nifti1Image(np.asarray(array, np.float32).transpose(2, 1, 0), None, header=header), str(path))


@pytest.mark.parametrize(
    ("affine", "message"),
    [
        (np.full((4, 4), np.nan), "NaN or infinite"),
        (np.zeros((4, 4)), "singular"),
        (np.array([[1.0, 1, 0, 0], [1, 1, 0, 0], [0, 0, 3, 0], [0, 0, 0, 1]]), "singular"),
    ],
)
def test_nan_zero_or_degenerate_affines_are_refused_at_read_time(dataset, affine, message):
    path = dataset / "imagesTr" / "phantom_000_0000.nii.gz"
    array = read_volume(path).array
    write_raw_nifti(path, array, affine)
    with pytest.raises(VolumeReadError, match=message) as error:
        load_case(first_case(dataset))
    assert str(error.value).startswith(str(path))


def test_label_geometry_that_differs_from_the_image(dataset):
    shifted = read_volume(dataset / "labelsTr" / "phantom_000.nii.gz").ijk_to_ras.copy()
    shifted[:3, 3] += 5.0
    replace_label(dataset, label_like(dataset), shifted)
    with pytest.raises(DatasetError, match="label geometry differs from the image"):
        load_case(first_case(dataset))


def test_a_4d_channel_file_is_named(dataset):
    path = dataset / "imagesTr" / "phantom_000_0000.nii.gz"
    volume = read_volume(path)
    write_nifti(Volume(np.stack([volume.array, volume.array]), volume.ijk_to_ras), path)
    with pytest.raises(DatasetError, match="has 2 channels .* but the dataset declares 1") as error:
        load_case(first_case(dataset))
    assert str(error.value).startswith(str(path))


@pytest.mark.parametrize("what", ["channel", "case"])
def test_all_zero_channels_and_cases_are_errors(dataset, what):
    meta = json.loads((dataset / "dataset.json").read_text())
    if what == "channel":  # a second channel that is blank
        meta["modality"] = {"0": "phantom", "1": "blank"}
        (dataset / "dataset.json").write_text(json.dumps(meta))
        shutil.copy(dataset / "imagesTr" / "phantom_001_0000.nii.gz", dataset / "imagesTr" / "phantom_001_0001.nii.gz")
        volume = read_volume(dataset / "imagesTr" / "phantom_000_0000.nii.gz")
        write_nifti(
            Volume(np.zeros_like(volume.array), volume.ijk_to_ras), dataset / "imagesTr" / "phantom_000_0001.nii.gz"
        )
        expected = dataset / "imagesTr" / "phantom_000_0001.nii.gz"
    else:
        volume = read_volume(dataset / "imagesTr" / "phantom_000_0000.nii.gz")
        write_nifti(
            Volume(np.zeros_like(volume.array), volume.ijk_to_ras), dataset / "imagesTr" / "phantom_000_0000.nii.gz"
        )
        expected = dataset / "imagesTr" / "phantom_000_0000.nii.gz"
    with pytest.raises(DatasetError, match="is all zero") as error:
        load_case(first_case(dataset))
    assert str(error.value).startswith(str(expected))


def test_nan_pixels_are_refused(dataset):
    path = dataset / "imagesTr" / "phantom_000_0000.nii.gz"
    volume = read_volume(path)
    volume.array[1, 2, 3] = np.nan
    write_nifti(volume, path)
    with pytest.raises(VolumeReadError, match="1 voxels are NaN or infinite"):
        load_case(first_case(dataset))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ([1, 2], "expected a JSON object"),
        ({"training": [{"label": "./labelsTr/phantom_000.nii.gz"}]}, r"training\[0\]: expected .* with an image path"),
        ({"training": "all"}, "'training' must be a list"),
        ({"training": [{"image": 3}]}, r"training\[0\]"),
        ({"labels": ["background"], "training": []}, "'labels' must be a mapping"),
        ({"modality": ["FLAIR"], "training": []}, "'modality'/'channel_names' must map channel indices"),
    ],
)
def test_malformed_dataset_json(dataset, content, message):
    (dataset / "dataset.json").write_text(json.dumps(content))
    with pytest.raises(DatasetError, match=message) as error:
        read_decathlon(dataset)
    assert str(error.value).startswith(str(dataset / "dataset.json"))


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("p1,x", "line 3: invalid literal"),
        ("p1,-1", "line 3: label -1 is negative"),
        ("p1,1,nan", "measure 'm' is not a finite"),
    ],
)
def test_csv_rows_are_checked(tmp_path, row, message):
    write_nifti(Volume(np.ones((2, 3, 4), np.float32)), tmp_path / "p0.nii.gz")
    write_nifti(Volume(np.ones((2, 3, 4), np.float32)), tmp_path / "p1.nii.gz")
    (tmp_path / "cases.csv").write_text(f"case,label,m\np0,0,1\n{row}\n")
    with pytest.raises(DatasetError, match=message):
        read_csv_dataset(tmp_path, tmp_path / "cases.csv")


@pytest.mark.parametrize("which", ["middle", "last"])
def test_dicom_image_without_pixel_data_is_named_not_skipped(tmp_path, which):
    import pydicom

    write_series(tmp_path / "s", [0, 1, 2])
    files = sorted((tmp_path / "s").glob("*.dcm"))
    victim = files[1] if which == "middle" else files[0]  # files are written in reverse slice order
    ds = pydicom.dcmread(victim)
    del ds.PixelData
    ds.save_as(victim, enforce_file_format=True)
    with pytest.raises(VolumeReadError, match="DICOM image header without pixel data") as error:
        read_dicom_series(tmp_path / "s")
    assert str(error.value).startswith(str(victim))


def test_a_dicomdir_like_file_without_image_attributes_is_still_passed_over(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    write_series(tmp_path / "s", [0, 1, 2])
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = "SET"
    ds.save_as(tmp_path / "s" / "DICOMDIR", enforce_file_format=True)
    assert read_dicom_series(tmp_path / "s").shape_kji[0] == 3


def test_a_single_class_training_set_is_refused_before_training(tmp_path):
    root = write_synthetic_dataset(tmp_path / "negatives", cases=3, shape=(3, 8, 8), positive_fraction=0.0, seed=0)
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "train",
                str(root),
                "--out",
                str(tmp_path / "out"),
                "--folds",
                "2",
                "--epochs",
                "1",
                "--size",
                "8",
                "--device",
                "cpu",
            ]
        )
    assert exit_info.value.code.startswith(f"wssscam train: {root}: every one of the 9 training slices is of class 0")
    assert not (tmp_path / "out").exists()  # refused before any output
