"""Arrays with geometry <-> MRML volume nodes (scalar volumes, label maps), keeping spacing, origin
and direction.

A node's geometry is its IJK-to-RAS matrix (``GetIJKToRASMatrix``), which holds spacing, origin
and the direction cosines together, so it is exactly the library's ``Volume.ijk_to_ras``. Arrays are
KJI, as ``slicer.util.arrayFromVolume`` returns them. Tensors are accepted and moved to the CPU here
(this is the NumPy edge).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import slicer
import vtk

from ..data.volume import Volume
from .geometry import resample_to_grid


def vtk_matrix(matrix: np.ndarray) -> vtk.vtkMatrix4x4:
    """A ``vtkMatrix4x4`` holding the 4 x 4 NumPy ``matrix``."""
    out = vtk.vtkMatrix4x4()
    for r in range(4):
        for c in range(4):
            out.SetElement(r, c, float(matrix[r, c]))
    return out


def numpy_matrix(matrix: vtk.vtkMatrix4x4) -> np.ndarray:
    """The 4 x 4 NumPy array of a ``vtkMatrix4x4``."""
    return np.array([[matrix.GetElement(r, c) for c in range(4)] for r in range(4)], dtype=np.float64)


def _to_numpy(array) -> np.ndarray:
    """NumPy view of an ndarray or a (CPU or GPU) torch tensor."""
    if hasattr(array, "detach"):
        array = array.detach().cpu().numpy()
    return np.asarray(array)


def array_to_volume_node(
    scene, array, ijk_to_ras: np.ndarray, name: str, node=None, class_name: str = "vtkMRMLScalarVolumeNode"
):
    """Put a K x J x I ``array`` (ndarray or tensor; dtype kept, bool stored as uint8) with its
    IJK-to-RAS affine into a volume node of ``scene``.

    ``node``: an existing volume node to overwrite (keeps its display settings); otherwise a new
    node of ``class_name`` (``vtkMRMLScalarVolumeNode`` or ``vtkMRMLLabelMapVolumeNode``) named
    ``name`` is added. Returns the node.
    """
    data = _to_numpy(array)
    if data.ndim != 3:
        raise ValueError(f"{name}: a volume node holds one K x J x I channel, got shape {data.shape}")
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if data.dtype == np.float16:
        data = data.astype(np.float32)
    if node is None:
        node = scene.AddNewNodeByClass(class_name, name)
    slicer.util.updateVolumeFromArray(node, np.ascontiguousarray(data))
    node.SetIJKToRASMatrix(vtk_matrix(np.asarray(ijk_to_ras, dtype=np.float64)))
    node.Modified()
    return node


def volume_to_node(
    scene,
    volume: Volume,
    name: str | None = None,
    channel: int = 0,
    node=None,
    class_name: str = "vtkMRMLScalarVolumeNode",
):
    """One channel of a library :class:`Volume` as a volume node (see :func:`array_to_volume_node`)."""
    array = volume.array if volume.channels == 1 and volume.array.ndim == 3 else volume.array[channel]
    return array_to_volume_node(scene, array, volume.ijk_to_ras, name or volume.source or "Volume", node, class_name)


def world_ijk_to_ras(node) -> np.ndarray:
    """The node's IJK-to-RAS affine including a linear parent transform (the geometry the user sees).

    Raises ``ValueError`` for a non-linear (warping) parent transform: harden it first.
    """
    matrix = vtk.vtkMatrix4x4()
    node.GetIJKToRASMatrix(matrix)
    affine = numpy_matrix(matrix)
    parent = node.GetParentTransformNode()
    if parent is not None:
        if not parent.IsTransformToWorldLinear():
            raise ValueError(
                f"volume node '{node.GetName()}' is under a non-linear transform '{parent.GetName()}': harden it first"
            )
        to_world = vtk.vtkMatrix4x4()
        parent.GetMatrixTransformToWorld(to_world)
        affine = numpy_matrix(to_world) @ affine
    return affine


def node_grid(node) -> tuple[tuple[int, int, int], np.ndarray]:
    """The node's voxel grid without copying voxels: K x J x I shape and world IJK-to-RAS affine."""
    if node is None or node.GetImageData() is None:
        raise ValueError(f"volume node '{node.GetName() if node is not None else None}' holds no image data")
    i, j, k = node.GetImageData().GetDimensions()
    return (k, j, i), world_ijk_to_ras(node)


def node_to_volume(node) -> Volume:
    """A scalar or label-map volume node as a library :class:`Volume` (K x J x I float32 copy, affine
    including a linear parent transform, ``source`` = the node's name)."""
    if node is None or node.GetImageData() is None:
        raise ValueError(f"volume node '{node.GetName() if node is not None else None}' holds no image data")
    array = np.array(slicer.util.arrayFromVolume(node), dtype=np.float32, copy=True)
    if array.ndim != 3:
        raise ValueError(
            f"volume node '{node.GetName()}' has {array.shape[-1]} components; only scalar volumes are supported"
        )
    return Volume(array, world_ijk_to_ras(node), node.GetName())


def nodes_to_volume(nodes: Sequence, order: int = 1) -> Volume:
    """Several volume nodes as one C x K x J x I :class:`Volume` on the first node's grid.

    Channels whose grid (shape or affine) differs from the first are resampled onto it
    (``order`` 1: trilinear; voxels outside a channel's extent become 0). ``source`` joins the
    node names with '+'.
    """
    if not nodes:
        raise ValueError("nodes_to_volume: no volume nodes given")
    volumes = [node_to_volume(n) for n in nodes]
    first = volumes[0]
    channels = [first.array]
    for v in volumes[1:]:
        if v.same_grid(first):
            channels.append(v.array)
        else:
            channels.append(
                resample_to_grid(v.array, v.ijk_to_ras, first.ijk_to_ras, first.shape_kji, order=order).astype(
                    np.float32
                )
            )
    array = channels[0] if len(channels) == 1 else np.stack(channels)
    return Volume(array, first.ijk_to_ras, "+".join(v.source for v in volumes))
