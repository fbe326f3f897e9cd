"""Readers keep geometry (round trips with oblique directions and anisotropic spacing) and reject
bad input with the file named: truncated files, DICOM gaps, mixed series, NaN voxels."""

import gzip

import numpy as np
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid

from WSSSCamLib.data.readers import (
    VolumeReadError,
    read_dicom_series,
    read_nifti,
    read_nrrd,
    read_volume,
    write_nifti,
    write_nrrd,
)
from WSSSCamLib.data.volume import Volume, affine_from_geometry


def oblique_volume(channels=None):
    angle = np.deg2rad(20)
    direction = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1.0]])
    affine = affine_from_geometry([0.7, 0.9, 2.5], [-12.0, 30.5, 7.25], direction)
    shape = (5, 6, 7) if channels is None else (channels, 5, 6, 7)
    array = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    return Volume(array, affine, "synthetic")


@pytest.mark.parametrize("suffix", [".nii.gz", ".nii"])
def test_nifti_round_trip_keeps_array_and_geometry(tmp_path, suffix):
    volume = oblique_volume()
    path = write_nifti(volume, tmp_path / f"v{suffix}")
    back = read_nifti(path)
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.ijk_to_ras, volume.ijk_to_ras, atol=1e-5)
    np.testing.assert_allclose(back.spacing, [0.7, 0.9, 2.5], atol=1e-6)


def test_nifti_axis_order_is_kji_as_in_slicer(tmp_path):
    import nibabel

    data = np.random.default_rng(0).random((4, 3, 2)).astype(np.float32)  # (I, J, K) on disk
    nibabel.save(nibabel.Nifti1Image(data, np.diag([2.0, 3.0, 4.0, 1.0])), str(tmp_path / "x.nii.gz"))
    volume = read_volume(tmp_path / "x.nii.gz")
    assert volume.array.shape == (2, 3, 4)
    assert volume.array[1, 2, 3] == data[3, 2, 1]
    np.testing.assert_allclose(volume.spacing, [2, 3, 4])


def test_multichannel_nifti_reads_channels_first(tmp_path):
    volume = oblique_volume(channels=3)
    back = read_nifti(write_nifti(volume, tmp_path / "c.nii.gz"))
    assert back.array.shape == (3, 5, 6, 7)
    np.testing.assert_array_equal(back.array, volume.array)


@pytest.mark.parametrize("channels", [None, 2])
def test_nrrd_round_trip_in_lps_keeps_ras_geometry(tmp_path, channels):
    volume = oblique_volume(channels)
    back = read_nrrd(write_nrrd(volume, tmp_path / "v.nrrd"))
    np.testing.assert_array_equal(back.array, volume.array)
    np.testing.assert_allclose(back.ijk_to_ras, volume.ijk_to_ras, atol=1e-9)


def test_nrrd_header_in_lps_is_converted_to_ras(tmp_path):
    import nrrd

    data = np.zeros((3, 4, 5), np.float32)  # I, J, K
    nrrd.write(
        str(tmp_path / "h.nrrd"),
        data,
        {
            "space": "left-posterior-superior",
            "space directions": np.diag([1.5, 2.0, 3.0]),
            "space origin": np.array([10.0, 20.0, 30.0]),
        },
    )
    volume = read_nrrd(tmp_path / "h.nrrd")
    np.testing.assert_allclose(volume.origin, [-10, -20, 30])
    np.testing.assert_allclose(volume.ijk_to_ras[:3, :3], np.diag([-1.5, -2.0, 3.0]))


def test_truncated_file_names_the_file(tmp_path):
    path = write_nifti(oblique_volume(), tmp_path / "cut.nii.gz")
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(VolumeReadError, match="cut.nii.gz: cannot read NIfTI"):
        read_volume(path)


def test_nan_voxels_are_refused(tmp_path):
    volume = oblique_volume()
    volume.array[2, 3, 4] = np.nan
    path = write_nifti(volume, tmp_path / "nan.nii.gz")
    with pytest.raises(VolumeReadError, match="nan.nii.gz: 1 voxels are NaN"):
        read_volume(path)


def test_unknown_format_and_missing_file(tmp_path):
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(VolumeReadError, match="unknown volume format"):
        read_volume(tmp_path / "a.txt")
    with pytest.raises(VolumeReadError, match="no such file"):
        read_volume(tmp_path / "missing.nii.gz")


# ----------------------------------------------------------------------------------------- DICOM
ROW = np.array([np.cos(0.3), np.sin(0.3), 0.0])
COLUMN = np.array([0.0, 0.0, -1.0])  # coronal-ish, oblique
NORMAL = np.cross(ROW, COLUMN)
PIXEL_SPACING = (0.8, 0.5)  # (between rows, between columns)
ORIGIN = np.array([5.0, -7.0, 40.0])


def slice_pixels(k):
    return (np.arange(4 * 6).reshape(4, 6) + 100 * k).astype(np.uint16)


def base_dataset(series_uid, sop_class=MRImageStorage):
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    ds.StudyInstanceUID = "1.2.3"
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "MR"
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = ds.BitsStored = 16
    ds.HighBit = 15
    ds.PixelRepresentation = 0
    ds.RescaleSlope = 2
    ds.RescaleIntercept = -10
    return ds


def write_series(folder, ks, series_uid="1.2.3.4", spacing=2.0):
    folder.mkdir(parents=True, exist_ok=True)
    for order, k in enumerate(reversed(ks)):  # files out of order on purpose
        ds = base_dataset(series_uid)
        ds.Rows, ds.Columns = 4, 6
        ds.ImageOrientationPatient = [*ROW, *COLUMN]
        ds.ImagePositionPatient = list(ORIGIN + k * spacing * NORMAL)
        ds.PixelSpacing = list(PIXEL_SPACING)
        ds.InstanceNumber = order
        ds.PixelData = slice_pixels(k).tobytes()
        ds.save_as(folder / f"im{order}.dcm", enforce_file_format=True)


def lps_position(k, j, i, spacing=2.0):
    return ORIGIN + i * PIXEL_SPACING[1] * ROW + j * PIXEL_SPACING[0] * COLUMN + k * spacing * NORMAL


def check_geometry(volume, spacing=2.0):
    for k, j, i in [(0, 0, 0), (2, 3, 5), (1, 0, 4)]:
        ras = volume.ijk_to_ras @ [i, j, k, 1]
        lps = lps_position(k, j, i, spacing)
        np.testing.assert_allclose(ras[:3], [-lps[0], -lps[1], lps[2]], atol=1e-6)
        assert volume.array[k, j, i] == int(slice_pixels(k)[j, i]) * 2 - 10


def test_dicom_series_sorted_by_position_with_geometry_in_ras(tmp_path):
    write_series(tmp_path / "s", [0, 1, 2, 3])
    volume = read_volume(tmp_path / "s")
    assert volume.array.shape == (4, 4, 6)
    check_geometry(volume)


def test_dicom_gap_is_refused(tmp_path):
    write_series(tmp_path / "gap", [0, 1, 3, 4])
    with pytest.raises(VolumeReadError, match="gap.*uneven.*4.000 mm between slices 1 and 2"):
        read_dicom_series(tmp_path / "gap")


def test_mixed_series_are_refused_unless_one_is_chosen(tmp_path):
    write_series(tmp_path / "mix", [0, 1, 2], series_uid="1.1")
    write_series(tmp_path / "mix" / "other", [0, 1], series_uid="2.2")
    with pytest.raises(VolumeReadError, match="holds 2 series"):
        read_dicom_series(tmp_path / "mix")
    assert read_dicom_series(tmp_path / "mix", series_uid="2.2").array.shape == (2, 4, 6)


def test_inconsistent_orientation_is_refused(tmp_path):
    write_series(tmp_path / "o", [0, 1, 2])
    import pydicom

    path = tmp_path / "o" / "im1.dcm"
    ds = pydicom.dcmread(path)
    ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    ds.save_as(path)
    with pytest.raises(VolumeReadError, match="im1.dcm: orientation"):
        read_dicom_series(tmp_path / "o")


def test_multiframe_dicom(tmp_path):
    ds = base_dataset("9.9", sop_class="1.2.840.10008.5.1.4.1.1.4.1")  # Enhanced MR
    ds.Rows, ds.Columns = 4, 6
    ds.NumberOfFrames = 3
    shared = Dataset()
    orientation, measures = Dataset(), Dataset()
    orientation.ImageOrientationPatient = [*ROW, *COLUMN]
    measures.PixelSpacing = list(PIXEL_SPACING)
    shared.PlaneOrientationSequence = [orientation]
    shared.PixelMeasuresSequence = [measures]
    ds.SharedFunctionalGroupsSequence = [shared]
    frames = []
    for k in (2, 0, 1):  # frames out of spatial order
        position, frame = Dataset(), Dataset()
        position.ImagePositionPatient = list(ORIGIN + k * 2.0 * NORMAL)
        frame.PlanePositionSequence = [position]
        frames.append(frame)
    ds.PerFrameFunctionalGroupsSequence = frames
    ds.PixelData = np.stack([slice_pixels(k) for k in (2, 0, 1)]).tobytes()
    ds.save_as(tmp_path / "mf.dcm", enforce_file_format=True)
    volume = read_volume(tmp_path / "mf.dcm")
    assert volume.array.shape == (3, 4, 6)
    check_geometry(volume)


def test_not_dicom_file_is_named(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "junk.dcm").write_bytes(gzip.compress(b"not dicom"))
    with pytest.raises(VolumeReadError, match="junk.dcm"):
        read_dicom_series(tmp_path / "d")
