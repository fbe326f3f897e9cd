"""Masks <-> segments of a ``vtkMRMLSegmentationNode``, and ROI boxes as masks.

Masks are boolean K x J x I arrays on a volume's voxel grid (its IJK-to-RAS affine). Writing puts
each mask into a named segment as a binary labelmap in exactly that geometry (the segmentation's
reference geometry is the volume's); reading exports a segment through
``vtkSlicerSegmentationsModuleLogic`` into a temporary label-map node on the grid of a given
volume node, so segments drawn on another grid are resampled (nearest neighbour) onto it.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import slicer
import vtk
import vtk.util.numpy_support

from ..data.segmentation_files import SEGMENT_COLOURS
from .geometry import resample_to_grid
from .volumes import array_to_volume_node, node_grid, numpy_matrix, vtk_matrix


def ensure_converter_rules() -> None:
    """Register the segmentation representation converters when none are registered.

    The Slicer application's Segmentations module registers them at start-up (then this does
    nothing); headless ``slicer-core`` has the rule classes but an empty factory, without which a
    segment cannot even hold a binary labelmap ("Unable to construct empty representation").
    """
    factory = slicer.vtkSegmentationConverterFactory.GetInstance()
    if factory.GetConverterRules():
        return
    for rule in (
        "vtkBinaryLabelmapToClosedSurfaceConversionRule",
        "vtkClosedSurfaceToBinaryLabelmapConversionRule",
        "vtkClosedSurfaceToFractionalLabelmapConversionRule",
        "vtkFractionalLabelmapToClosedSurfaceConversionRule",
    ):
        factory.RegisterConverterRule(getattr(slicer, rule)())


def oriented_image(mask: np.ndarray, ijk_to_ras: np.ndarray):
    """A ``vtkOrientedImageData`` (unsigned char, 0/1) of a K x J x I mask with its IJK-to-RAS affine."""
    mask = np.asarray(mask)
    if mask.ndim != 3:
        raise ValueError(f"a mask must be K x J x I, got shape {mask.shape}")
    image = slicer.vtkOrientedImageData()
    k, j, i = mask.shape
    image.SetDimensions(i, j, k)
    image.AllocateScalars(vtk.VTK_UNSIGNED_CHAR, 1)
    view = vtk.util.numpy_support.vtk_to_numpy(image.GetPointData().GetScalars()).reshape(mask.shape)
    view[:] = mask.astype(bool)
    image.SetImageToWorldMatrix(vtk_matrix(np.asarray(ijk_to_ras, dtype=np.float64)))
    return image


def node_ids(scene) -> set[str]:
    """IDs of all nodes now in ``scene``."""
    return {scene.GetNthNode(n).GetID() for n in range(scene.GetNumberOfNodes())}


def remove_new_nodes(scene, before: set[str]) -> None:
    """Remove the nodes added to ``scene`` since ``before = node_ids(scene)`` (a temporary label map
    with the display and colour nodes an export made for it)."""
    for ident in node_ids(scene) - before:
        node = scene.GetNodeByID(ident)
        if node is not None:
            scene.RemoveNode(node)


def segment_id(segmentation_node, segment: str) -> str:
    """The ID of ``segment`` (an ID or a name) in the segmentation node; ``KeyError`` naming the
    segments there when it is neither."""
    segmentation = segmentation_node.GetSegmentation()
    if segmentation.GetSegment(segment) is not None:
        return segment
    found = segmentation.GetSegmentIdBySegmentName(segment)
    if found:
        return found
    names = [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]
    raise KeyError(f"segmentation '{segmentation_node.GetName()}' has no segment '{segment}' (it has {names})")


def masks_to_segmentation(
    scene,
    masks: Mapping[str, np.ndarray],
    reference,
    name: str = "WSSSCam results",
    node=None,
    colours: Mapping[str, tuple[float, float, float]] | None = None,
):
    """Put each boolean K x J x I mask (ndarray or tensor) into a segment named by its key.

    ``reference``: the volume node (or library ``Volume``) whose grid the masks are on; it becomes
    the segmentation's reference geometry. ``node``: an existing segmentation node to add to (a
    segment with the same name is replaced); otherwise a new node ``name`` is added to ``scene``.
    Returns the segmentation node.
    """
    ensure_converter_rules()
    if hasattr(reference, "GetIJKToRASMatrix"):
        shape_kji, ijk_to_ras = node_grid(reference)
    else:
        shape_kji, ijk_to_ras = reference.shape_kji, reference.ijk_to_ras
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", name)
        node.CreateDefaultDisplayNodes()
    if hasattr(reference, "GetIJKToRASMatrix"):
        node.SetReferenceImageGeometryParameterFromVolumeNode(reference)
    segmentation = node.GetSegmentation()
    for index, (segment_name, mask) in enumerate(masks.items()):
        array = mask.detach().cpu().numpy() if hasattr(mask, "detach") else np.asarray(mask)
        if tuple(array.shape) != tuple(shape_kji):
            raise ValueError(f"mask '{segment_name}' has shape {array.shape}, the reference grid is {shape_kji}")
        image = oriented_image(array, ijk_to_ras)
        if not hasattr(reference, "GetIJKToRASMatrix") and segmentation.GetNumberOfSegments() == 0:
            geometry_string = slicer.vtkSegmentationConverter.SerializeImageGeometry(image)
            segmentation.SetConversionParameter(
                slicer.vtkSegmentationConverter.GetReferenceImageGeometryParameterName(), geometry_string
            )
        existing = segmentation.GetSegmentIdBySegmentName(segment_name)
        if existing:
            segmentation.RemoveSegment(existing)
        colour = (colours or {}).get(segment_name, SEGMENT_COLOURS[index % len(SEGMENT_COLOURS)])
        new_id = segmentation.AddEmptySegment(segment_name, segment_name, colour)
        ok = slicer.vtkSlicerSegmentationsModuleLogic.SetBinaryLabelmapToSegment(
            image, node, new_id, slicer.vtkSlicerSegmentationsModuleLogic.MODE_REPLACE, image.GetExtent()
        )
        if not ok:
            raise RuntimeError(f"could not write mask '{segment_name}' into segmentation '{node.GetName()}'")
    return node


def segment_to_mask(scene, segmentation_node, segment: str, volume_node) -> np.ndarray:
    """The segment (ID or name) as a boolean K x J x I mask on ``volume_node``'s voxel grid.

    Exported with ``vtkSlicerSegmentationsModuleLogic.ExportSegmentsToLabelmapNode`` using the
    volume as reference geometry (nearest-neighbour resampling when the segment's own grid
    differs), through a temporary label-map node that is removed again. Voxels the segment does
    not reach are False.
    """
    ensure_converter_rules()
    ident = segment_id(segmentation_node, segment)
    shape_kji, _ = node_grid(volume_node)
    before = node_ids(scene)
    labelmap = scene.AddNewNodeByClass("vtkMRMLLabelMapVolumeNode", "__wssscam_temporary__")
    try:
        ids = vtk.vtkStringArray()
        ids.InsertNextValue(ident)
        logic = slicer.vtkSlicerSegmentationsModuleLogic
        if not logic.ExportSegmentsToLabelmapNode(
            segmentation_node, ids, labelmap, volume_node, slicer.vtkSegmentation.EXTENT_REFERENCE_GEOMETRY
        ):
            raise RuntimeError(
                f"could not export segment '{segment}' of '{segmentation_node.GetName()}' onto '{volume_node.GetName()}'"
            )
        if labelmap.GetImageData() is None:
            return np.zeros(shape_kji, dtype=bool)
        array = np.array(slicer.util.arrayFromVolume(labelmap)) > 0
        matrix = vtk.vtkMatrix4x4()
        labelmap.GetIJKToRASMatrix(matrix)
        affine = numpy_matrix(matrix)
    finally:
        remove_new_nodes(scene, before)
    if array.shape == shape_kji and np.allclose(affine, volume_node_affine(volume_node), atol=1e-4):
        return array
    # The export may crop to a sub-extent: place it on the volume's full grid (exact for offsets).
    return resample_to_grid(array, affine, volume_node_affine(volume_node), shape_kji, order=0, fill=False)


def volume_node_affine(volume_node) -> np.ndarray:
    """The node's own IJK-to-RAS affine (without parent transforms)."""
    matrix = vtk.vtkMatrix4x4()
    volume_node.GetIJKToRASMatrix(matrix)
    return numpy_matrix(matrix)


def segment_mask_on_volume(scene, segmentation_node, segment: str, volume) -> np.ndarray:
    """Like :func:`segment_to_mask` for a library ``Volume`` (a temporary volume node carries its grid)."""
    node = array_to_volume_node(
        scene, np.zeros(volume.shape_kji, dtype=np.uint8), volume.ijk_to_ras, "__wssscam_grid__"
    )
    try:
        return segment_to_mask(scene, segmentation_node, segment, node)
    finally:
        scene.RemoveNode(node)


def roi_to_mask(roi_node, volume_node) -> np.ndarray:
    """A box ROI (``vtkMRMLMarkupsROINode``, any orientation) as a boolean K x J x I mask on the volume's
    grid: voxel centres whose RAS point lies inside the box (faces included)."""
    shape_kji, ijk_to_ras = node_grid(volume_node)
    world_to_object = np.linalg.inv(numpy_matrix(roi_node.GetObjectToWorldMatrix()))
    half = np.asarray(roi_node.GetSize(), dtype=np.float64) / 2.0
    k, j, i = np.indices(shape_kji)
    ijk = np.stack([i.ravel(), j.ravel(), k.ravel(), np.ones(i.size)])
    local = (world_to_object @ ijk_to_ras @ ijk)[:3]
    inside = np.all(np.abs(local) <= half[:, None] + 1e-6, axis=0)
    return inside.reshape(shape_kji)
