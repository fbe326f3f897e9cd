"""Writing MRML nodes to files: segmentations (.seg.nrrd, label-map NIfTI/NRRD, DICOM SEG) and CAM
volumes (NRRD/NIfTI).

This module only adapts nodes to arrays: the segments are read on a volume's voxel grid (or on
the segmentation's own reference geometry) and handed, with that grid's IJK-to-RAS affine, to the
scene-free writers of :mod:`WSSSCamLib.data.segmentation_files` and :mod:`WSSSCamLib.data.readers`
- the same writers ``wssscam predict`` uses. Every file is written under a temporary name in the
target folder and renamed: a reader never sees a half-written file and a failure leaves no partial
file. Errors (:class:`ExportError`) name the file and the problem.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
import slicer

from ..data.readers import VolumeReadError, write_volume
from ..data.segmentation_files import SegmentationFileError, write_dicom_seg, write_label_map, write_seg_nrrd
from ..data.volume import Volume

VOLUME_SUFFIXES = (".nrrd", ".nii", ".nii.gz")


class ExportError(RuntimeError):
    """A result could not be exported; the message names the file and the problem."""


def _segment_names(segmentation_node, segments: Sequence[str] | None, path: Path) -> list[str]:
    """Names of the given segments (IDs or names), or of every segment; ExportError naming ``path`` when there are none."""
    from .segmentations import segment_id

    segmentation = segmentation_node.GetSegmentation()
    if segments is None:
        segments = [segmentation.GetNthSegmentID(n) for n in range(segmentation.GetNumberOfSegments())]
    if not segments:
        raise ExportError(f"{path}: segmentation '{segmentation_node.GetName()}' has no segments")
    return [segmentation.GetSegment(segment_id(segmentation_node, s)).GetName() for s in segments]


def _reference_grid(segmentation_node, path: Path) -> Volume:
    """An empty volume on the segmentation's reference image geometry (the grid its segments were made on)."""
    import vtk

    converter = slicer.vtkSegmentationConverter
    geometry = segmentation_node.GetSegmentation().GetConversionParameter(
        converter.GetReferenceImageGeometryParameterName()
    )
    image = slicer.vtkOrientedImageData()
    if not geometry or not converter.DeserializeImageGeometry(geometry, image):
        raise ExportError(
            f"{path}: segmentation '{segmentation_node.GetName()}' has no reference geometry; give the volume it belongs to"
        )
    matrix = vtk.vtkMatrix4x4()
    image.GetImageToWorldMatrix(matrix)
    from .volumes import numpy_matrix

    affine = numpy_matrix(matrix)
    i0, i1, j0, j1, k0, k1 = image.GetExtent()
    affine[:3, 3] = affine[:3, :3] @ np.array([i0, j0, k0], dtype=np.float64) + affine[:3, 3]
    return Volume(np.zeros((k1 - k0 + 1, j1 - j0 + 1, i1 - i0 + 1), np.float32), affine)


def segmentation_masks(
    scene, segmentation_node, volume, segments: Sequence[str] | None = None, path: Path | str = ""
) -> dict[str, np.ndarray]:
    """Segment name -> boolean K x J x I mask on ``volume``'s grid (a volume node or a library ``Volume``)."""
    from .segmentations import segment_mask_on_volume, segment_to_mask

    names = _segment_names(segmentation_node, segments, Path(path))
    read = segment_to_mask if hasattr(volume, "GetIJKToRASMatrix") else segment_mask_on_volume
    return {name: read(scene, segmentation_node, name, volume) for name in names}


def _colours(segmentation_node, names: Sequence[str]) -> dict[str, tuple[float, float, float]]:
    segmentation = segmentation_node.GetSegmentation()
    return {
        name: tuple(segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName(name)).GetColor()) for name in names
    }


def _node_affine(volume) -> np.ndarray:
    from .segmentations import volume_node_affine

    return volume_node_affine(volume) if hasattr(volume, "GetIJKToRASMatrix") else volume.ijk_to_ras


def _written(path: Path, write) -> Path:
    """Run a writer, turning its errors into ExportError naming ``path``."""
    try:
        write()
    except (SegmentationFileError, VolumeReadError) as error:
        raise ExportError(str(error)) from None
    except OSError as error:
        raise ExportError(f"{path}: {error.strerror or error}") from None
    return path


def export_segmentation_seg_nrrd(
    segmentation_node, path: str | Path, volume_node=None, segments: Sequence[str] | None = None
) -> Path:
    """Write segments (default: all) to ``path`` (must end in .seg.nrrd) as a 3D Slicer segmentation:
    names, colours and geometry kept. The grid is ``volume_node``'s, else the segmentation's own
    reference geometry."""
    path = Path(path)
    if not path.name.lower().endswith(".seg.nrrd"):
        raise ExportError(f"{path}: a segmentation file must end in .seg.nrrd")
    scene = segmentation_node.GetScene()
    grid = volume_node if volume_node is not None else _reference_grid(segmentation_node, path)
    masks = segmentation_masks(scene, segmentation_node, grid, segments, path)
    return _written(
        path, lambda: write_seg_nrrd(masks, _node_affine(grid), path, colours=_colours(segmentation_node, masks))
    )


def export_volume(volume_node, path: str | Path) -> Path:
    """Write a scalar (e.g. CAM) or label-map volume node to NRRD or NIfTI (by ``path``'s extension)
    with its geometry (spacing, origin, direction) and voxel type."""
    path = Path(path)
    if not path.name.lower().endswith(VOLUME_SUFFIXES) or path.name.lower().endswith(".seg.nrrd"):
        raise ExportError(f"{path}: unsupported volume file type; use one of {', '.join(VOLUME_SUFFIXES)}")
    if volume_node.GetImageData() is None:
        raise ExportError(f"{path}: volume node '{volume_node.GetName()}' holds no image data")
    array = np.array(slicer.util.arrayFromVolume(volume_node))
    return _written(path, lambda: write_volume(array, _node_affine(volume_node), path))


def export_segmentation_labelmap(
    scene, segmentation_node, path: str | Path, volume_node, segments: Sequence[str] | None = None
) -> dict[str, int]:
    """Write segments (IDs or names; ``None`` = all, in order) as one label map on ``volume_node``'s
    grid to NIfTI or NRRD: the n-th segment gets label n (1, 2, ...; overlaps: the later segment
    wins). A JSON sidecar ``<name>.labels.json`` maps segment names to labels. Returns that map."""
    path = Path(path)
    if not path.name.lower().endswith(VOLUME_SUFFIXES):
        raise ExportError(f"{path}: unsupported label-map file type; use one of {', '.join(VOLUME_SUFFIXES)}")
    masks = segmentation_masks(scene, segmentation_node, volume_node, segments, path)
    labels: dict[str, int] = {}
    _written(path, lambda: labels.update(write_label_map(masks, _node_affine(volume_node), path)))
    return labels


def export_dicom_seg(
    scene,
    segmentation_node,
    volume_node,
    path: str | Path,
    dicom_files: Sequence[str | Path],
    segments: Sequence[str] | None = None,
) -> Path:
    """Write segments as a binary DICOM SEG (highdicom) referencing the DICOM series the volume was
    loaded from.

    Needs highdicom installed and a volume that came from DICOM: Slicer's DICOM loader sets the
    node attribute ``DICOM.instanceUIDs``; ``dicom_files`` are that series' files (inside Slicer:
    ``slicer.dicomDatabase.fileForInstance(uid)`` for each UID). Each segment is sampled at the
    pixel centres of every source image. Otherwise raises :class:`ExportError` saying why.
    """
    path = Path(path)
    uids = (volume_node.GetAttribute("DICOM.instanceUIDs") or "").split()
    if not uids:
        raise ExportError(
            f"{path}: volume '{volume_node.GetName()}' was not loaded from DICOM (no DICOM.instanceUIDs "
            "attribute), so a DICOM SEG has no source images to refer to; export .seg.nrrd or NIfTI instead"
        )
    try:
        import highdicom  # noqa: F401
        import pydicom
    except ImportError:
        raise ExportError(
            f"{path}: DICOM SEG export needs the 'highdicom' package (pip install highdicom); "
            "export .seg.nrrd or NIfTI instead"
        ) from None
    if not dicom_files:
        raise ExportError(f"{path}: the DICOM files of volume '{volume_node.GetName()}' were not given")
    found = {str(pydicom.dcmread(str(f), stop_before_pixels=True).SOPInstanceUID): Path(f) for f in dicom_files}
    missing = set(uids) - set(found)
    if missing:
        raise ExportError(
            f"{path}: {len(missing)} source image(s) of '{volume_node.GetName()}' are not among the given DICOM files"
        )
    masks = segmentation_masks(scene, segmentation_node, volume_node, segments, path)
    sources = [found[uid] for uid in uids]
    return _written(path, lambda: write_dicom_seg(masks, _node_affine(volume_node), sources, path))
