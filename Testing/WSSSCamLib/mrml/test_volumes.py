"""Arrays with geometry <-> MRML volume nodes, under slicer-core (real MRML, no Slicer application)."""

import numpy as np
import pytest
import slicer
import torch

from WSSSCamLib.data.volume import Volume, affine_from_geometry
from WSSSCamLib.mrml import array_to_volume_node, node_to_volume, nodes_to_volume, resample_to_grid, volume_to_node
from WSSSCamLib.mrml.volumes import numpy_matrix, vtk_matrix


def rotation(axis: str, degrees: float) -> np.ndarray:
    c, s = np.cos(np.radians(degrees)), np.sin(np.radians(degrees))
    a, b = {"x": (1, 2), "y": (0, 2), "z": (0, 1)}[axis]
    r = np.eye(3)
    r[a, a], r[a, b], r[b, a], r[b, b] = c, -s, s, c
    return r


OBLIQUE = affine_from_geometry([0.7, 1.3, 3.0], [-12.5, 40.0, 7.25], rotation("z", 30) @ rotation("x", -20))


def test_round_trip_keeps_values_spacing_origin_and_direction():
    scene = slicer.vtkMRMLScene()
    array = np.random.default_rng(0).random((5, 6, 7), dtype=np.float32)
    node = volume_to_node(scene, Volume(array, OBLIQUE, "T1"))
    assert node.GetName() == "T1" and node.IsA("vtkMRMLScalarVolumeNode")
    np.testing.assert_allclose(node.GetSpacing(), [0.7, 1.3, 3.0], atol=1e-9)
    np.testing.assert_allclose(node.GetOrigin(), [-12.5, 40.0, 7.25], atol=1e-9)
    directions = np.zeros((3, 3))
    node.GetIJKToRASDirections(directions)
    np.testing.assert_allclose(directions, rotation("z", 30) @ rotation("x", -20), atol=1e-9)
    assert node.GetImageData().GetDimensions() == (7, 6, 5)  # VTK order I, J, K
    back = node_to_volume(node)
    np.testing.assert_array_equal(back.array, array)
    np.testing.assert_allclose(back.ijk_to_ras, OBLIQUE, atol=1e-12)
    # voxel (i, j, k) = (6, 0, 4) sits at ijk_to_ras @ (6, 0, 4, 1) in RAS
    ras = OBLIQUE @ [6, 0, 4, 1]
    matrix = vtk_matrix(np.eye(4))
    node.GetRASToIJKMatrix(matrix)
    np.testing.assert_allclose(numpy_matrix(matrix) @ ras, [6, 0, 4, 1], atol=1e-9)


def test_tensor_input_bool_labelmap_and_parent_transform():
    scene = slicer.vtkMRMLScene()
    mask = torch.zeros(3, 4, 5, dtype=torch.bool)
    mask[1, 2, 3] = True
    node = array_to_volume_node(scene, mask, OBLIQUE, "mask", class_name="vtkMRMLLabelMapVolumeNode")
    assert node.IsA("vtkMRMLLabelMapVolumeNode")
    assert slicer.util.arrayFromVolume(node).dtype == np.uint8
    assert slicer.util.arrayFromVolume(node)[1, 2, 3] == 1 and slicer.util.arrayFromVolume(node).sum() == 1
    shift = np.eye(4)
    shift[:3, 3] = [5.0, -2.0, 1.0]
    transform = scene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    transform.SetMatrixTransformToParent(vtk_matrix(shift))
    node.SetAndObserveTransformNodeID(transform.GetID())
    np.testing.assert_allclose(node_to_volume(node).ijk_to_ras, shift @ OBLIQUE, atol=1e-12)


def test_overwriting_a_node_and_rejecting_several_channels():
    scene = slicer.vtkMRMLScene()
    node = array_to_volume_node(scene, np.zeros((2, 2, 2), np.float32), np.eye(4), "a")
    same = array_to_volume_node(scene, np.ones((3, 2, 2), np.float32), OBLIQUE, "ignored", node=node)
    assert same is node and scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == 1
    assert node_to_volume(node).shape_kji == (3, 2, 2)
    with pytest.raises(ValueError, match="one K x J x I channel"):
        array_to_volume_node(scene, np.zeros((2, 2, 2, 2)), np.eye(4), "four-d")


def linear_field(affine: np.ndarray, shape) -> np.ndarray:
    """f(RAS) = 2 R - A + 0.5 S + 3 at each voxel centre: trilinear interpolation reproduces it exactly."""
    k, j, i = np.indices(shape)
    ras = np.tensordot(affine[:3, :3], np.stack([i, j, k]), axes=1) + affine[:3, 3, None, None, None]
    return (2 * ras[0] - ras[1] + 0.5 * ras[2] + 3).astype(np.float32)


def test_channels_on_other_grids_are_resampled_onto_the_first():
    scene = slicer.vtkMRMLScene()
    first_affine = affine_from_geometry([1.0, 1.0, 2.0], [0.0, 0.0, 0.0], np.eye(3))
    # second channel: finer, shifted and rotated grid covering the first one
    second_affine = affine_from_geometry([0.5, 0.5, 1.0], [-3.0, -3.0, -4.0], rotation("z", 10))
    first = array_to_volume_node(scene, np.full((4, 6, 6), 7.0, np.float32), first_affine, "FLAIR")
    second = array_to_volume_node(scene, linear_field(second_affine, (16, 30, 30)), second_affine, "T2")
    volume = nodes_to_volume([first, second])
    assert volume.array.shape == (2, 4, 6, 6) and volume.source == "FLAIR+T2"
    np.testing.assert_allclose(volume.ijk_to_ras, first_affine)
    np.testing.assert_array_equal(volume.array[0], 7.0)
    np.testing.assert_allclose(volume.array[1], linear_field(first_affine, (4, 6, 6)), atol=1e-4)
    same = nodes_to_volume([first, first])
    np.testing.assert_array_equal(same.array[1], same.array[0])


def test_nearest_neighbour_resampling_by_hand():
    # source voxel size 2 mm, target 1 mm on the same origin: target i takes source round(i / 2) (ties up)
    source = np.arange(4, dtype=np.int16).reshape(1, 1, 4)
    out = resample_to_grid(source, np.diag([2.0, 1, 1, 1]), np.eye(4), (1, 1, 8), order=0, fill=-1)
    np.testing.assert_array_equal(out[0, 0], [0, 1, 1, 2, 2, 3, 3, -1])
    assert out.dtype == np.int16
