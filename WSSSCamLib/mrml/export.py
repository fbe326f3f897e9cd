"""Writing results to files: segmentations (.seg.nrrd, label-map NIfTI/NRRD, DICOM SEG) and CAM volumes
(NRRD/NIfTI).

Files are written by MRML's own storage nodes (the same writers Slicer's "Save" uses), to a
temporary name in the target folder that keeps the file's extension (the writer picks the format
from it), then renamed over the target: a reader never sees a half-written file and a failure
leaves no partial file. Errors (:class:`ExportError`) name the file and the problem.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import slicer
import vtk

from ..atomic import write_text
from .volumes import numpy_matrix

VOLUME_SUFFIXES = (".nrrd", ".nhdr", ".nii", ".nii.gz", ".mha", ".mhd")


class ExportError(RuntimeError):
    """A result could not be exported; the message names the file and the problem."""



def _segments_to_export(segmentation_node, segments, path: Path) -> list[str]:
    """The given segments, or every segment of the node; ExportError naming ``path`` when there are none."""
    segmentation = segmentation_node.GetSegmentation()
    if segments is None:
        segments = [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
    if not segments:
        raise ExportError(f"{path}: segmentation '{segmentation_node.GetName()}' has no segments")
    return list(segments)

def _suffix(path: Path) -> str:
    """The file's full extension as a writer sees it: '.seg.nrrd', '.nii.gz' or the last suffix."""
    name = path.name.lower()
    for double in (".seg.nrrd", ".nii.gz"):
        if name.endswith(double):
            return double
    return path.suffix.lower()


def _atomic_write(path: str | Path, write: Callable[[Path], bool]) -> Path:
    """Call ``write(temporary)`` with a temporary path in ``path``'s folder ending in the same
    extension; rename it to ``path`` when ``write`` returns True, otherwise remove it and raise."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = _suffix(path)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name[: len(path.name) - len(suffix)]}.", suffix=suffix, dir=path.parent)
    os.close(handle)
    temporary = Path(temporary)
    try:
        if not write(temporary) or not temporary.is_file() or temporary.stat().st_size == 0:
            raise ExportError(f"{path}: the writer failed (nothing written)")
        mask = os.umask(0)
        os.umask(mask)
        os.chmod(temporary, 0o666 & ~mask)
        os.replace(temporary, path)
    except ExportError:
        temporary.unlink(missing_ok=True)
        raise
    except BaseException as error:
        temporary.unlink(missing_ok=True)
        raise ExportError(f"{path}: {error}") from error
    return path


def export_segmentation_seg_nrrd(segmentation_node, path: str | Path) -> Path:
    """Write the segmentation node to ``path`` (must end in .seg.nrrd) with a
    ``vtkMRMLSegmentationStorageNode``: segment names, colours and geometry are kept."""
    path = Path(path)
    if _suffix(path) != ".seg.nrrd":
        raise ExportError(f"{path}: a segmentation file must end in .seg.nrrd")
    if segmentation_node.GetSegmentation().GetNumberOfSegments() == 0:
        raise ExportError(f"{path}: segmentation '{segmentation_node.GetName()}' has no segments")

    def write(temporary: Path) -> bool:
        storage = slicer.vtkMRMLSegmentationStorageNode()
        storage.SetFileName(str(temporary))
        return bool(storage.WriteData(segmentation_node))

    return _atomic_write(path, write)


def _write_volume_node(node, temporary: Path) -> bool:
    storage = slicer.vtkMRMLVolumeArchetypeStorageNode()
    storage.SetFileName(str(temporary))
    storage.SetUseCompression(1)
    return bool(storage.WriteData(node))


def export_volume(volume_node, path: str | Path) -> Path:
    """Write a scalar (e.g. CAM) or label-map volume node to NRRD or NIfTI (by ``path``'s extension)
    with its geometry (spacing, origin, direction)."""
    path = Path(path)
    if _suffix(path) not in VOLUME_SUFFIXES:
        raise ExportError(f"{path}: unsupported volume file type; use one of {', '.join(VOLUME_SUFFIXES)}")
    if volume_node.GetImageData() is None:
        raise ExportError(f"{path}: volume node '{volume_node.GetName()}' holds no image data")
    return _atomic_write(path, lambda temporary: _write_volume_node(volume_node, temporary))


def export_segmentation_labelmap(scene, segmentation_node, path: str | Path, volume_node,
                                 segments: Sequence[str] | None = None) -> dict[str, int]:
    """Write segments (IDs or names; ``None`` = all, in order) as one label map on ``volume_node``'s
    grid to NIfTI or NRRD: the n-th segment gets label n (1, 2, ...; overlaps: the later segment
    wins). A JSON sidecar ``<name>.labels.json`` maps segment names to labels. Returns that map."""
    from .segmentations import node_ids, remove_new_nodes, segment_id

    path = Path(path)
    suffix = _suffix(path)
    if suffix not in VOLUME_SUFFIXES:
        raise ExportError(f"{path}: unsupported label-map file type; use one of {', '.join(VOLUME_SUFFIXES)}")
    segmentation = segmentation_node.GetSegmentation()
    segments = _segments_to_export(segmentation_node, segments, path)
    ids = vtk.vtkStringArray()
    labels = {}
    for number, segment in enumerate(segments, start=1):
        ident = segment_id(segmentation_node, segment)
        ids.InsertNextValue(ident)
        labels[segmentation.GetSegment(ident).GetName()] = number
    before = node_ids(scene)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__wssscam_export__")
    try:
        if not slicer.vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode(
                segmentation_node, ids, labelmap, volume_node, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY):
            raise ExportError(f"{path}: could not export the segments of '{segmentation_node.GetName()}' as a label map")
        _atomic_write(path, lambda temporary: _write_volume_node(labelmap, temporary))
    finally:
        remove_new_nodes(scene, before)
    write_text(path.with_name(path.name[: len(path.name) - len(suffix)] + ".labels.json"), json.dumps(labels, indent=2))
    return labels


def _frame_masks(mask: np.ndarray, ijk_to_ras: np.ndarray, dataset) -> np.ndarray:
    """The K x J x I ``mask`` sampled (nearest voxel) at every pixel centre of one single-frame DICOM
    image: rows x columns bool. DICOM positions are LPS; RAS = diag(-1, -1, 1) LPS."""
    rows, columns = int(dataset.Rows), int(dataset.Columns)
    position = np.asarray(dataset.ImagePositionPatient, dtype=np.float64)
    orientation = np.asarray(dataset.ImageOrientationPatient, dtype=np.float64)
    row_spacing, column_spacing = (float(v) for v in dataset.PixelSpacing)
    r, c = np.mgrid[0:rows, 0:columns]
    lps = (position[:, None, None] + orientation[:3, None, None] * c * column_spacing
           + orientation[3:, None, None] * r * row_spacing)
    ras = np.stack([-lps[0], -lps[1], lps[2], np.ones_like(lps[0])]).reshape(4, -1)
    ijk = np.floor(np.linalg.inv(ijk_to_ras) @ ras + 0.5).astype(np.int64)[:3]
    shape_ijk = np.array(mask.shape[::-1])[:, None]
    inside = np.all((ijk >= 0) & (ijk < shape_ijk), axis=0)
    out = np.zeros(rows * columns, dtype=bool)
    out[inside] = mask[ijk[2, inside], ijk[1, inside], ijk[0, inside]]
    return out.reshape(rows, columns)


def export_dicom_seg(scene, segmentation_node, volume_node, path: str | Path, dicom_files: Sequence[str | Path],
                     segments: Sequence[str] | None = None) -> Path:
    """Write segments as a binary DICOM SEG (highdicom) referencing the DICOM series the volume was
    loaded from.

    Needs highdicom installed and a volume that came from DICOM: Slicer's DICOM loader sets the
    node attribute ``DICOM.instanceUIDs``; ``dicom_files`` are that series' files (inside Slicer:
    ``slicer.dicomDatabase.fileForInstance(uid)`` for each UID). Each segment is sampled at the
    pixel centres of every source image. Otherwise raises :class:`ExportError` saying why.
    """
    from .segmentations import segment_id, segment_to_mask

    path = Path(path)
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
    if not uids:
        raise ExportError(f"{path}: volume '{volume_node.GetName()}' was not loaded from DICOM (no DICOM.instanceUIDs "
                          "attribute), so a DICOM SEG has no source images to refer to; export .seg.nrrd or NIfTI instead")
    try:
        import highdicom as hd
        import pydicom
        from pydicom.sr.codedict import codes
    except ImportError:
        raise ExportError(f"{path}: DICOM SEG export needs the 'highdicom' package (pip install highdicom); "
                          "export .seg.nrrd or NIfTI instead") from None
    if not dicom_files:
        raise ExportError(f"{path}: the DICOM files of volume '{volume_node.GetName()}' were not given")
    datasets = [pydicom.dcmread(str(f)) for f in dicom_files]
    missing = set(uids) - {str(d.SOPInstanceUID) for d in datasets}
    if missing:
        raise ExportError(f"{path}: {len(missing)} source image(s) of '{volume_node.GetName()}' are not among the given DICOM files")
    datasets = [d for d in datasets if str(d.SOPInstanceUID) in set(uids)]
    segmentation = segmentation_node.GetSegmentation()
    segments = _segments_to_export(segmentation_node, segments, path)
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    affine = numpy_matrix(matrix)
    from .. import __version__

    algorithm = hd.AlgorithmIdentificationSequence(name="WSSSCam", version=__version__, family=codes.cid7162.ArtificialIntelligence)
    descriptions, planes = [], []
    for number, segment in enumerate(segments, start=1):
        ident = segment_id(segmentation_node, segment)
        mask = segment_to_mask(scene, segmentation_node, ident, volume_node)
        planes.append(np.stack([_frame_masks(mask, affine, d) for d in datasets]))
        descriptions.append(hd.seg.SegmentDescription(
            segment_number=number, segment_label=segmentation.GetSegment(ident).GetName(),
            segmented_property_category=codes.SCT.MorphologicallyAbnormalStructure, segmented_property_type=codes.SCT.Lesion,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC, algorithm_identification=algorithm))
    pixels = np.stack(planes, axis=-1).astype(np.uint8)

    def write(temporary: Path) -> bool:
        seg = hd.seg.Segmentation(
            source_images=datasets, pixel_array=pixels, segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
            segment_descriptions=descriptions, series_instance_uid=hd.UID(), series_number=900,
            sop_instance_uid=hd.UID(), instance_number=1, manufacturer="WSSSCam", manufacturer_model_name="WSSSCam",
            software_versions=__version__, device_serial_number="0", omit_empty_frames=False)
        seg.save_as(str(temporary))
        return True

    return _atomic_write(path, write)
