"""Segmentation files written without a Slicer scene: 3D Slicer's ``.seg.nrrd``, label maps
(NIfTI/NRRD with a ``.labels.json`` sidecar) and DICOM SEG (highdicom).

These are the only writers of these formats in WSSSCamLib: ``wssscam predict`` calls them
directly, and :mod:`WSSSCamLib.mrml.export` turns MRML nodes into arrays and calls them too.

Conventions: ``segments`` is an ordered mapping segment name -> boolean K x J x I array (KJI, as
:class:`~WSSSCamLib.data.volume.Volume`), every mask on the grid of ``ijk_to_ras`` (4 x 4,
voxel index (i, j, k, 1) -> RAS mm). Every file is written under a temporary name in the target
folder and renamed (:func:`~WSSSCamLib.atomic.atomic_path`); errors name the file.

``.seg.nrrd`` follows the format Slicer's ``vtkMRMLSegmentationStorageNode`` writes (checked by a
test that reads our files back with it): a uint8 NRRD in LPS space with a leading ``list`` axis
of layers, segments that do not overlap share a layer with label values 1, 2, ..., and per segment
the key-value fields ``Segment<n>_ID/_Name/_Color/_Extent/_LabelValue/_Layer/_Tags``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from ..atomic import atomic_path, write_text
from ..errors import InvalidInputError
from .volume import LPS_TO_RAS

SEGMENT_COLOURS: tuple[tuple[float, float, float], ...] = (
    (0.2, 0.8, 0.2),
    (0.25, 0.45, 1.0),
    (1.0, 0.9, 0.1),
    (0.9, 0.2, 0.8),
    (0.1, 0.85, 0.9),
    (1.0, 0.55, 0.1),
    (0.55, 0.3, 0.85),
    (0.6, 0.4, 0.2),
)
"""Colours (RGB in [0, 1]) given to segments in order, repeating: green, blue, yellow, magenta, cyan,
orange, purple, brown (the Slicer panel uses the same)."""

CAM_SEGMENT_TERMINOLOGY = (
    "Segmentation category and type - 3D Slicer General Anatomy list"
    "~SCT^49755003^Morphologically Altered Structure~SCT^4147007^Mass~^^"
    "~Anatomic codes - DICOM master list~^^~^^"
)
"""Terminology of every CAM segment, in vtkSegment's TerminologyEntry tag format (context~category~
type~type modifier~anatomic context~region~region modifier, codes as scheme^value^meaning): 3D
Slicer's General Anatomy list, "Morphologically Altered Structure" (SCT 49755003) / "Mass" (SCT
4147007). The DICOM SEG writer codes its segments the same way."""


class SegmentationFileError(InvalidInputError):
    """Segments cannot be written; the message names the file and the problem."""


def _checked_segments(segments: Mapping[str, np.ndarray], path: Path) -> dict[str, np.ndarray]:
    """Segments as boolean KJI arrays of one shape; SegmentationFileError naming ``path`` otherwise."""
    if not segments:
        raise SegmentationFileError(f"{path}: no segments to write")
    masks = {str(name): np.asarray(mask).astype(bool, copy=False) for name, mask in segments.items()}
    shapes = {mask.shape for mask in masks.values()}
    if len(shapes) != 1 or len(next(iter(shapes))) != 3:
        raise SegmentationFileError(f"{path}: segments must be K x J x I arrays of one shape, got {sorted(shapes)}")
    return masks


def _pack_layers(masks: Sequence[np.ndarray]) -> list[tuple[int, int]]:
    """(layer, label value) per mask: each mask goes to the first layer it does not overlap, with the
    next free label value there (Slicer's "collapse labelmaps" packing)."""
    occupied: list[np.ndarray] = []
    labels: list[int] = []
    placement = []
    for mask in masks:
        layer = next((n for n, used in enumerate(occupied) if not (used & mask).any()), len(occupied))
        if layer == len(occupied):
            occupied.append(np.zeros_like(mask))
            labels.append(0)
        occupied[layer] |= mask
        labels[layer] += 1
        placement.append((layer, labels[layer]))
    return placement


def _extent(mask: np.ndarray) -> str:
    """Slicer's segment extent 'i0 i1 j0 j1 k0 k1' (inclusive voxel bounds); an empty segment '0 -1 0 -1 0 -1'."""
    if not mask.any():
        return "0 -1 0 -1 0 -1"
    bounds = []
    for axis in (2, 1, 0):  # I, J, K of a KJI array
        present = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        bounds += [int(present[0]), int(present[-1])]
    return " ".join(str(b) for b in bounds)


def _reference_geometry(ijk_to_ras: np.ndarray, shape_kji: Sequence[int]) -> str:
    """Slicer's "Reference image geometry" conversion parameter: the IJK-to-RAS matrix row by row,
    then the extent i0;i1;j0;j1;k0;k1."""
    matrix = ";".join(repr(float(v)) for v in np.asarray(ijk_to_ras, dtype=np.float64).reshape(-1))
    k, j, i = shape_kji
    return f"{matrix};0;{i - 1};0;{j - 1};0;{k - 1};"


def write_seg_nrrd(
    segments: Mapping[str, np.ndarray],
    ijk_to_ras: np.ndarray,
    path: str | Path,
    colours: Mapping[str, Sequence[float]] | None = None,
    tags: str = CAM_SEGMENT_TERMINOLOGY,
) -> Path:
    """Write ``segments`` (name -> bool K x J x I) as a 3D Slicer segmentation file ``path`` (*.seg.nrrd).

    Segment IDs equal the names; colours default to :data:`SEGMENT_COLOURS` in order; ``tags`` is the
    terminology entry of every segment. The reference image geometry is the given grid, so Slicer
    shows the segments on the volume they were computed on.
    """
    import nrrd

    path = Path(path)
    if not path.name.lower().endswith(".seg.nrrd"):
        raise SegmentationFileError(f"{path}: a segmentation file must end in .seg.nrrd")
    masks = _checked_segments(segments, path)
    names = list(masks)
    placement = _pack_layers([masks[n] for n in names])
    layers = np.zeros((max(layer for layer, _ in placement) + 1, *next(iter(masks.values())).shape), dtype=np.uint8)
    for name, (layer, label) in zip(names, placement):
        layers[layer][masks[name]] = label
    lps = LPS_TO_RAS @ np.asarray(ijk_to_ras, dtype=np.float64)
    header: dict = {
        "type": "unsigned char",
        "space": "left-posterior-superior",
        "kinds": ["list", "domain", "domain", "domain"],
        "space directions": np.vstack([np.full(3, np.nan), lps[:3, :3].T]),
        "space origin": lps[:3, 3],
        "encoding": "gzip",
    }
    for number, (name, (layer, label)) in enumerate(zip(names, placement)):
        colour = (colours or {}).get(name, SEGMENT_COLOURS[number % len(SEGMENT_COLOURS)])
        header.update(
            {
                f"Segment{number}_Color": " ".join(f"{float(c):g}" for c in colour),
                f"Segment{number}_ColorAutoGenerated": "0",
                f"Segment{number}_Extent": _extent(masks[name]),
                f"Segment{number}_ID": name,
                f"Segment{number}_LabelValue": str(label),
                f"Segment{number}_Layer": str(layer),
                f"Segment{number}_Name": name,
                f"Segment{number}_NameAutoGenerated": "0",
                f"Segment{number}_Tags": f"TerminologyEntry:{tags}|",
            }
        )
    header.update(
        {
            "Segmentation_ContainedRepresentationNames": "Binary labelmap|",
            "Segmentation_ConversionParameters": "Reference image geometry|"
            + _reference_geometry(ijk_to_ras, layers.shape[1:])
            + "|Image geometry of the volume the segments were computed on.&",
            "Segmentation_MasterRepresentation": "Binary labelmap",
            "Segmentation_ReferenceImageExtentOffset": "0 0 0",
        }
    )
    with atomic_path(path) as temporary:
        nrrd.write(str(temporary), np.ascontiguousarray(layers.transpose(0, 3, 2, 1)), header, compression_level=1)
    return path


def read_seg_nrrd(path: str | Path) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Segments (name -> bool K x J x I, in file order) and the IJK-to-RAS affine of a .seg.nrrd
    (ours or Slicer's: one layer as a 3D file, or several along a leading list axis)."""
    import nrrd

    path = Path(path)
    try:
        data, header = nrrd.read(str(path))
    except Exception as error:
        raise SegmentationFileError(f"{path}: cannot read NRRD ({type(error).__name__}: {error})") from error
    directions = np.asarray(
        [np.full(3, np.nan) if d is None else d for d in header["space directions"]], dtype=np.float64
    )
    if data.ndim == 3:
        data, directions = data[None], np.vstack([np.full(3, np.nan), directions])
    affine = np.eye(4)
    affine[:3, :3] = directions[1:].T
    affine[:3, 3] = np.asarray(header.get("space origin", np.zeros(3)), dtype=np.float64)
    if header.get("space", "left-posterior-superior") in ("left-posterior-superior", "LPS", "lps"):
        affine = LPS_TO_RAS @ affine
    numbers = sorted(int(m.group(1)) for key in header if (m := re.fullmatch(r"Segment(\d+)_ID", key)))
    layers = data.transpose(0, 3, 2, 1)  # layer, K, J, I
    segments = {}
    for n in numbers:
        layer, label = int(header.get(f"Segment{n}_Layer", 0)), int(header[f"Segment{n}_LabelValue"])
        segments[header.get(f"Segment{n}_Name", header[f"Segment{n}_ID"])] = layers[layer] == label
    return segments, affine


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii", ".nrrd", ".nhdr"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    raise SegmentationFileError(f"{path}: unsupported label-map file type; use .nii.gz, .nii, .nrrd or .nhdr")


def write_label_map(segments: Mapping[str, np.ndarray], ijk_to_ras: np.ndarray, path: str | Path) -> dict[str, int]:
    """Write segments as one label map (NIfTI or NRRD by ``path``'s extension): the n-th segment gets
    label n (1, 2, ...; where segments overlap the later one wins), uint8 (uint16 past 255 segments).
    A sidecar ``<stem>.labels.json`` maps names to labels. Returns that mapping."""
    from .readers import write_volume

    path = Path(path)
    stem = _stem(path)
    masks = _checked_segments(segments, path)
    labels = np.zeros(next(iter(masks.values())).shape, dtype=np.uint8 if len(masks) < 256 else np.uint16)
    numbers = {}
    for number, (name, mask) in enumerate(masks.items(), start=1):
        labels[mask] = number
        numbers[name] = number
    write_volume(labels, ijk_to_ras, path)
    write_text(path.with_name(f"{stem}.labels.json"), json.dumps(numbers, indent=2))
    return numbers


def _frame_mask(mask: np.ndarray, ijk_to_ras: np.ndarray, dataset) -> np.ndarray:
    """The K x J x I ``mask`` sampled (nearest voxel) at every pixel centre of one single-frame DICOM
    image: rows x columns bool. DICOM positions are LPS; RAS = diag(-1, -1, 1) LPS."""
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    position = np.asarray(dataset.ImagePositionPatient, dtype=np.float64)
    orientation = np.asarray(dataset.ImageOrientationPatient, dtype=np.float64)
    row_spacing, column_spacing = (float(v) for v in dataset.PixelSpacing)
    r, c = np.mgrid[0:rows, 0:columns]
    lps = (
        position[:, None, None]
        + orientation[:3, None, None] * c * column_spacing
        + orientation[3:, None, None] * r * row_spacing
    )
    ras = np.stack([-lps[0], -lps[1], lps[2], np.ones_like(lps[0])]).reshape(4, -1)
    ijk = np.floor(np.linalg.inv(ijk_to_ras) @ ras + 0.5).astype(np.int64)[:3]
    shape_ijk = np.array(mask.shape[::-1])[:, None]
    inside = np.all((ijk >= 0) & (ijk < shape_ijk), axis=0)
    out = np.zeros(rows * columns, dtype=bool)
    out[inside] = mask[ijk[2, inside], ijk[1, inside], ijk[0, inside]]
    return out.reshape(rows, columns)


def write_dicom_seg(
    segments: Mapping[str, np.ndarray],
    ijk_to_ras: np.ndarray,
    source_files: Sequence[str | Path],
    path: str | Path,
    series_description: str = "WSSSCam CAM segmentation",
) -> Path:
    """Write segments as a binary DICOM SEG (highdicom) that refers to its source series.

    ``source_files``: the single-frame DICOM images the volume was read from (any order). Each
    segment is sampled at the pixel centres of every source image, one frame per image and segment
    (empty frames kept). Segments are coded as in :data:`CAM_SEGMENT_TERMINOLOGY` (SCT 49755003 / 4147007 Mass),
    algorithm type AUTOMATIC. Needs ``highdicom`` (``pip install highdicom``).
    """
    path = Path(path)
    try:
        import highdicom as hd
        import pydicom
        from pydicom.sr.codedict import codes
    except ImportError:
        raise SegmentationFileError(
            f"{path}: DICOM SEG needs the 'highdicom' package (pip install highdicom)"
        ) from None
    from .. import __version__

    masks = _checked_segments(segments, path)
    if not source_files:
        raise SegmentationFileError(f"{path}: no source DICOM images given")
    datasets = [pydicom.dcmread(str(f)) for f in source_files]
    datasets = [d for d in datasets if "PixelData" in d]
    if not datasets:
        raise SegmentationFileError(f"{path}: none of the {len(source_files)} source files holds an image")
    for dataset in datasets:
        if int(getattr(dataset, "NumberOfFrames", 1) or 1) > 1 or "ImagePositionPatient" not in dataset:
            raise SegmentationFileError(
                f"{path}: {getattr(dataset, 'filename', 'a source image')} is an enhanced multi-frame image (or has no ImagePositionPatient); DICOM SEG is "
                "written for single-frame series only - use the .seg.nrrd or the label maps"
            )
    algorithm = hd.AlgorithmIdentificationSequence(
        name="WSSSCam", version=__version__, family=codes.cid7162.ArtificialIntelligence
    )
    descriptions, planes = [], []
    for number, (name, mask) in enumerate(masks.items(), start=1):
        planes.append(np.stack([_frame_mask(mask, ijk_to_ras, d) for d in datasets]))
        descriptions.append(
            hd.seg.SegmentDescription(
                segment_number=number,
                segment_label=name[:64],
                segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure,
                segmented_property_type=codes.SCT.Mass,
                algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
                algorithm_identification=algorithm,
            )
        )
    pixels = np.stack(planes, axis=-1).astype(np.uint8)
    seg = hd.seg.Segmentation(
        source_images=datasets,
        pixel_array=pixels,
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=descriptions,
        series_instance_uid=hd.UID(),
        series_number=900,
        sop_instance_uid=hd.UID(),
        instance_number=1,
        manufacturer="WSSSCam",
        manufacturer_model_name="WSSSCam",
        software_versions=__version__,
        device_serial_number="0",
        series_description=series_description[:64],
        omit_empty_frames=False,
    )
    with atomic_path(path) as temporary:
        seg.save_as(str(temporary))
    return path
