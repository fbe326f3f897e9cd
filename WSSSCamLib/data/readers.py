"""Reading and writing volumes with their geometry: NIfTI (nibabel), NRRD (pynrrd), DICOM (pydicom).

Every reader returns a :class:`~WSSSCamLib.data.volume.Volume` (KJI float32 array, IJK-to-RAS
affine) and raises :class:`VolumeReadError` naming the file and the problem for unreadable input:
a truncated or corrupt file, a NaN, infinite or singular (e.g. all-zero) affine, a DICOM folder with
several series, a DICOM image header without pixel data, gaps or uneven spacing between slices,
inconsistent orientations, or NaN voxels.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

from ..atomic import atomic_path
from ..errors import UserError
from .volume import LPS_TO_RAS, Volume


class VolumeReadError(UserError, ValueError):
    """A volume file or series cannot be read; the message names the file and the problem."""


NIFTI_SUFFIXES = (".nii", ".nii.gz")
NRRD_SUFFIXES = (".nrrd", ".nhdr", ".seg.nrrd")


def read_volume(path: str | Path, check_finite: bool = True) -> Volume:
    """Read a NIfTI or NRRD file, or a folder holding one DICOM series, by its name."""
    path = Path(path)
    if path.is_dir():
        volume = read_dicom_series(path)
    elif not path.exists():
        raise VolumeReadError(f"{path}: no such file or folder")
    elif path.name.endswith(NIFTI_SUFFIXES):
        volume = read_nifti(path)
    elif path.name.endswith(NRRD_SUFFIXES):
        volume = read_nrrd(path)
    elif path.suffix.lower() in (".dcm", ""):
        volume = read_dicom_series([path])
    else:
        raise VolumeReadError(
            f"{path}: unknown volume format (expected .nii, .nii.gz, .nrrd, .nhdr, .dcm or a DICOM folder)"
        )
    _check(volume.check_affine)
    if check_finite:
        _check(volume.check_finite)
    return volume


def _check(check) -> None:
    """Run a :class:`Volume` check, raising its ``ValueError`` as :class:`VolumeReadError`."""
    try:
        check()
    except ValueError as error:
        raise VolumeReadError(str(error)) from None


# ---------------------------------------------------------------------------------------- NIfTI
def read_nifti(path: str | Path) -> Volume:
    """NIfTI-1/2 via nibabel. Data (I, J, K[, C]) becomes KJI (or C x K x J x I); the affine is kept."""
    import nibabel

    path = Path(path)
    try:
        image = nibabel.load(str(path))
        data = np.asarray(image.get_fdata(dtype=np.float32))
    except Exception as error:  # nibabel raises many types for truncated/corrupt files
        raise VolumeReadError(f"{path}: cannot read NIfTI ({type(error).__name__}: {error})") from error
    if data.ndim == 3:
        array = data.transpose(2, 1, 0)
    elif data.ndim == 4:
        array = data.transpose(3, 2, 1, 0)
    elif data.ndim == 2:
        array = data.T[None]
    else:
        raise VolumeReadError(f"{path}: NIfTI with {data.ndim} dimensions is not a volume")
    return Volume(np.ascontiguousarray(array), image.affine, str(path))


def write_nifti(volume: Volume, path: str | Path, dtype=np.float32) -> Path:
    """Write ``volume`` as NIfTI (atomically), geometry in the affine (sform and qform)."""
    import nibabel

    path = Path(path)
    array = volume.array.transpose(2, 1, 0) if volume.array.ndim == 3 else volume.array.transpose(3, 2, 1, 0)
    image = nibabel.Nifti1Image(np.ascontiguousarray(array).astype(dtype), volume.ijk_to_ras)
    image.set_qform(volume.ijk_to_ras, code=1)
    image.set_sform(volume.ijk_to_ras, code=1)
    suffix = ".nii.gz" if path.name.endswith(".gz") else ".nii"
    with atomic_path(path) as temporary:
        target = temporary.with_name(temporary.name + suffix)
        nibabel.save(image, str(target))
        target.replace(temporary)
    return path


def write_volume(array: np.ndarray, ijk_to_ras: np.ndarray, path: str | Path, compress: bool = True) -> Path:
    """Write a K x J x I (or C x K x J x I) array with its geometry as NIfTI or NRRD, chosen by
    ``path``'s extension, keeping the array's data type (float CAMs, integer label maps).
    ``compress=False`` writes NRRD raw (working files; NIfTI follows its extension)."""
    path = Path(path)
    array = np.asarray(array)
    volume = Volume(np.zeros((1, 1, 1), np.float32), ijk_to_ras, str(path))
    volume.array = array  # Volume stores float32; keep the caller's type
    if path.name.lower().endswith(NIFTI_SUFFIXES):
        return write_nifti(volume, path, dtype=array.dtype)
    if path.name.lower().endswith((".nrrd", ".nhdr")) and not path.name.lower().endswith(".seg.nrrd"):
        return write_nrrd(volume, path, compress)
    raise VolumeReadError(f"{path}: unsupported volume file type; use .nii.gz, .nii or .nrrd")


# ---------------------------------------------------------------------------------------- NRRD
_NRRD_SPACES = {
    "right-anterior-superior": np.eye(4),
    "ras": np.eye(4),
    "RAS": np.eye(4),
    "left-posterior-superior": LPS_TO_RAS,
    "lps": LPS_TO_RAS,
    "LPS": LPS_TO_RAS,
}


def read_nrrd(path: str | Path) -> Volume:
    """NRRD via pynrrd: 'space directions' and 'space origin' in LPS or RAS; one optional list axis."""
    import nrrd

    path = Path(path)
    try:
        data, header = nrrd.read(str(path))
    except Exception as error:
        raise VolumeReadError(f"{path}: cannot read NRRD ({type(error).__name__}: {error})") from error
    directions = header.get("space directions")
    space = header.get("space", "left-posterior-superior")
    if directions is None or space not in _NRRD_SPACES:
        raise VolumeReadError(f"{path}: NRRD without 'space directions' or with unsupported space '{space}'")
    directions = np.asarray([np.full(3, np.nan) if d is None else d for d in directions], dtype=np.float64)
    spatial_axes = [axis for axis, d in enumerate(directions) if np.all(np.isfinite(d))]
    list_axes = [axis for axis in range(data.ndim) if axis not in spatial_axes]
    if len(spatial_axes) != 3 or len(list_axes) > 1:
        raise VolumeReadError(
            f"{path}: NRRD must have 3 spatial axes and at most one channel axis, got {data.ndim} axes"
        )
    affine = np.eye(4)
    affine[:3, :3] = directions[spatial_axes].T
    affine[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    affine = _NRRD_SPACES[space] @ affine
    order = list_axes + spatial_axes[::-1]  # (C,) K, J, I
    return Volume(np.ascontiguousarray(data.transpose(order)), affine, str(path))


def write_nrrd(volume: Volume, path: str | Path, compress: bool = True) -> Path:
    """Write ``volume`` as NRRD in LPS space (as Slicer writes), atomically: gzip at level 1 (fast;
    level 9, pynrrd's default, is about 10x slower for a few percent smaller files), or raw."""
    import nrrd

    lps = LPS_TO_RAS @ volume.ijk_to_ras
    array = volume.array.transpose(2, 1, 0) if volume.array.ndim == 3 else volume.array.transpose(0, 3, 2, 1)
    directions = [list(v) for v in lps[:3, :3].T]
    header = {
        "space": "left-posterior-superior",
        "space origin": lps[:3, 3],
        "space directions": np.asarray(directions if volume.array.ndim == 3 else [[np.nan] * 3] + directions),
        "kinds": ["domain"] * 3 if volume.array.ndim == 3 else ["list"] + ["domain"] * 3,
        "encoding": "gzip" if compress else "raw",
    }
    with atomic_path(path) as temporary:
        nrrd.write(str(temporary), np.ascontiguousarray(array), header, compression_level=1)
    return Path(path)


# ---------------------------------------------------------------------------------------- DICOM
def _dicom_files(source) -> list[Path]:
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        return sorted(p for p in Path(source).rglob("*") if p.is_file() and not p.name.startswith("."))
    return [Path(p) for p in source]


_PIXEL_KEYWORDS = ("PixelData", "FloatPixelData", "DoubleFloatPixelData")
_IMAGE_KEYWORDS = ("Rows", "Columns", "ImagePositionPatient", "PerFrameFunctionalGroupsSequence")
"""A file with any of these attributes describes an image, so it must carry pixel data; others (DICOMDIR,
structured reports, presentation states) are not part of a volume and are passed over."""


def _read_headers(files: list[Path]):
    import pydicom

    datasets = []
    for file in files:
        try:
            dataset = pydicom.dcmread(str(file), stop_before_pixels=False)
        except Exception as error:
            raise VolumeReadError(f"{file}: not a readable DICOM file ({type(error).__name__}: {error})") from error
        if not any(keyword in dataset for keyword in _PIXEL_KEYWORDS):
            if any(keyword in dataset for keyword in _IMAGE_KEYWORDS):
                raise VolumeReadError(
                    f"{file}: DICOM image header without pixel data (a truncated or header-only file); "
                    "restore or remove it"
                )
            continue  # not an image: DICOMDIR, structured reports, presentation states
        datasets.append((file, dataset))
    return datasets


def _pixels(file: Path, dataset, frame_array=None) -> np.ndarray:
    try:
        pixels = dataset.pixel_array if frame_array is None else frame_array
    except Exception as error:
        raise VolumeReadError(f"{file}: cannot decode pixel data ({type(error).__name__}: {error})") from error
    slope = float(getattr(dataset, "RescaleSlope", 1.0) or 1.0)
    intercept = float(getattr(dataset, "RescaleIntercept", 0.0) or 0.0)
    return pixels.astype(np.float32) * slope + intercept


def _slice_affine_lps(row_direction, column_direction, pixel_spacing, normal, slice_spacing, origin) -> np.ndarray:
    """IJK-to-LPS: I runs along a row (ImageOrientationPatient[:3]), J down the columns, K along the normal."""
    affine = np.eye(4)
    affine[:3, 0] = np.asarray(row_direction) * float(pixel_spacing[1])
    affine[:3, 1] = np.asarray(column_direction) * float(pixel_spacing[0])
    affine[:3, 2] = np.asarray(normal) * slice_spacing
    affine[:3, 3] = origin
    return affine


def _stack_slices(
    source: str,
    positions: np.ndarray,
    orientation: np.ndarray,
    pixel_spacing,
    slices: list[np.ndarray],
    tolerance: float,
) -> Volume:
    """Sort slices along the normal, check spacing is even (no gap), build the RAS volume."""
    row, column = orientation[:3], orientation[3:]
    normal = np.cross(row, column)
    distances = positions @ normal
    order = np.argsort(distances)
    distances = distances[order]
    if len(distances) > 1:
        steps = np.diff(distances)
        if np.any(steps < 1e-6):
            raise VolumeReadError(
                f"{source}: two slices share the same position ({distances[np.argmin(steps)]:.3f} mm along the normal)"
            )
        step = float(np.median(steps))
        uneven = np.abs(steps - step) > tolerance * step
        if uneven.any():
            where = int(np.argmax(uneven))
            raise VolumeReadError(
                f"{source}: slice spacing is uneven: {steps[where]:.3f} mm between slices {where} and {where + 1} "
                f"where {step:.3f} mm is usual (a missing slice, a gap, or mixed acquisitions)"
            )
    else:
        step = 1.0
    array = np.stack([slices[i] for i in order])
    affine_lps = _slice_affine_lps(row, column, pixel_spacing, normal, step, positions[order[0]])
    return Volume(array, LPS_TO_RAS @ affine_lps, source)


def read_dicom_series(source, series_uid: str | None = None, tolerance: float = 0.05) -> Volume:
    """Read one DICOM series (a folder or a list of files), single-frame or enhanced multi-frame.

    Slices are sorted by their position along the slice normal. Raises :class:`VolumeReadError`
    for: several series without ``series_uid`` (mixed series), orientations or pixel spacings that
    differ between slices, duplicate positions, or spacing between slices that deviates from the
    median by more than ``tolerance`` (a relative fraction: a gap or a missing slice).
    """
    files = _dicom_files(source)
    label = str(source) if isinstance(source, (str, Path)) else (str(files[0].parent) if files else "DICOM files")
    if not files:
        raise VolumeReadError(f"{label}: no DICOM files")
    datasets = _read_headers(files)
    if not datasets:
        raise VolumeReadError(f"{label}: no DICOM file with pixel data")
    series: dict[str, list] = defaultdict(list)
    for file, dataset in datasets:
        series[str(getattr(dataset, "SeriesInstanceUID", ""))].append((file, dataset))
    if series_uid is None:
        if len(series) > 1:
            described = ", ".join(f"{uid} ({len(items)} files)" for uid, items in series.items())
            raise VolumeReadError(f"{label}: holds {len(series)} series ({described}); pass series_uid to choose one")
        series_uid = next(iter(series))
    if series_uid not in series:
        raise VolumeReadError(f"{label}: no series {series_uid}")
    members = series[series_uid]
    if len(members) == 1 and int(getattr(members[0][1], "NumberOfFrames", 1) or 1) > 1:
        return _read_multiframe(*members[0], tolerance)
    return _read_single_frames(label, members, tolerance)


def _read_single_frames(label: str, members, tolerance: float) -> Volume:
    orientations, spacings, positions, slices = [], [], [], []
    for file, dataset in members:
        for keyword in ("ImagePositionPatient", "ImageOrientationPatient", "PixelSpacing"):
            if keyword not in dataset:
                raise VolumeReadError(f"{file}: missing {keyword}; cannot place the slice in space")
        orientations.append(np.asarray(dataset.ImageOrientationPatient, dtype=np.float64))
        spacings.append(np.asarray(dataset.PixelSpacing, dtype=np.float64))
        positions.append(np.asarray(dataset.ImagePositionPatient, dtype=np.float64))
        slices.append(_pixels(file, dataset))
    for what, values in (("orientation", orientations), ("pixel spacing", spacings)):
        odd = [i for i, v in enumerate(values) if not np.allclose(v, values[0], atol=1e-4)]
        if odd:
            raise VolumeReadError(
                f"{members[odd[0]][0]}: {what} {values[odd[0]].tolist()} differs from {values[0].tolist()} of {members[0][0]} (inconsistent series)"
            )
    shapes = {s.shape for s in slices}
    if len(shapes) > 1:
        raise VolumeReadError(f"{label}: slices of different sizes {sorted(shapes)}")
    return _stack_slices(label, np.asarray(positions), orientations[0], spacings[0], slices, tolerance)


def _read_multiframe(file: Path, dataset, tolerance: float) -> Volume:
    """Enhanced (multi-frame) DICOM: geometry from the shared and per-frame functional groups."""
    try:
        shared = dataset.SharedFunctionalGroupsSequence[0]
        frames = dataset.PerFrameFunctionalGroupsSequence
        orientation = np.asarray(shared.PlaneOrientationSequence[0].ImageOrientationPatient, dtype=np.float64)
        pixel_spacing = np.asarray(shared.PixelMeasuresSequence[0].PixelSpacing, dtype=np.float64)
        positions = np.asarray([f.PlanePositionSequence[0].ImagePositionPatient for f in frames], dtype=np.float64)
    except (AttributeError, IndexError, KeyError) as error:
        raise VolumeReadError(
            f"{file}: multi-frame DICOM without plane position/orientation/pixel measures ({error})"
        ) from error
    pixels = _pixels(file, dataset)
    if pixels.shape[0] != len(positions):
        raise VolumeReadError(f"{file}: {pixels.shape[0]} frames but {len(positions)} frame positions")
    return _stack_slices(str(file), positions, orientation, pixel_spacing, list(pixels), tolerance)
