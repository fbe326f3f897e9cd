"""Masks <-> segments of a segmentation node and ROIs as masks, under slicer-core (real MRML)."""

import numpy as np
import pytest
import slicer
import torch

from WSSSCamLib.data.volume import Volume, affine_from_geometry
from WSSSCamLib.mrml import array_to_volume_node, masks_to_segmentation, roi_to_mask, segment_id, segment_to_mask
from WSSSCamLib.mrml.segmentations import segment_mask_on_volume

# An oblique grid with anisotropic spacing: rotated 30 degrees about S, voxels 0.7 x 1.3 x 3 mm.
_c, _s = np.cos(np.radians(30)), np.sin(np.radians(30))
OBLIQUE = affine_from_geometry([0.7, 1.3, 3.0], [-12.5, 40.0, 7.25], np.array([[_c, -_s, 0], [_s, _c, 0], [0, 0, 1]]))


def box(shape, k, j, i) -> np.ndarray:
    m = np.zeros(shape, dtype=bool)
    m[k[0] : k[1], j[0] : j[1], i[0] : i[1]] = True
    return m


def test_masks_to_named_segments_and_back_on_an_oblique_anisotropic_grid():
    scene = slicer.vtkMRMLScene()
    volume = array_to_volume_node(scene, np.zeros((6, 8, 10), np.float32), OBLIQUE, "MR")
    masks = {
        "grad-cam t=0.5": box((6, 8, 10), (1, 4), (2, 6), (3, 9)),
        "and ensemble": torch.from_numpy(box((6, 8, 10), (0, 1), (0, 1), (0, 1))),
    }
    node = masks_to_segmentation(scene, masks, volume, name="results")
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegment(n).GetName() for n in range(2)] == list(masks)
    for name, mask in masks.items():
        back = segment_to_mask(scene, node, name, volume)
        assert back.shape == (6, 8, 10) and back.dtype == bool
        np.testing.assert_array_equal(back, np.asarray(mask))
    # the temporary label map is gone again
    assert scene.GetNumberOfNodesByClass("vtkMRMLLabelMapVolumeNode") == 0
    # the same name replaces the segment
    masks_to_segmentation(scene, {"and ensemble": box((6, 8, 10), (5, 6), (7, 8), (9, 10))}, volume, node=node)
    assert segmentation.GetNumberOfSegments() == 2
    np.testing.assert_array_equal(
        segment_to_mask(scene, node, "and ensemble", volume), box((6, 8, 10), (5, 6), (7, 8), (9, 10))
    )


def test_segment_read_on_another_grid_is_resampled():
    scene = slicer.vtkMRMLScene()
    coarse_affine = affine_from_geometry([2.0, 2.0, 2.0], [0.0, 0.0, 0.0], np.eye(3))
    coarse = array_to_volume_node(scene, np.zeros((4, 4, 4), np.float32), coarse_affine, "coarse")
    node = masks_to_segmentation(scene, {"lesion": box((4, 4, 4), (1, 3), (1, 3), (1, 3))}, coarse)
    # covers RAS [1, 5] mm along each axis (voxel centres 2 and 4, half a voxel either side)
    fine_affine = affine_from_geometry([1.0, 1.0, 1.0], [0.0, 0.0, 0.0], np.eye(3))
    fine = array_to_volume_node(scene, np.zeros((8, 8, 8), np.float32), fine_affine, "fine")
    mask = segment_to_mask(scene, node, "lesion", fine)
    # fine voxel centres 0..7 mm; nearest coarse voxel of centre x is round(x / 2): 1 or 2 for x in 2..5
    expected = box((8, 8, 8), (2, 6), (2, 6), (2, 6))
    assert mask.shape == (8, 8, 8)
    differing = int((mask != expected).sum())
    # voxel centres exactly on a coarse boundary (x = 1, 5) may round either way
    boundary = box((8, 8, 8), (1, 7), (1, 7), (1, 7)) & ~box((8, 8, 8), (2, 5), (2, 5), (2, 5))
    assert np.array_equal(mask & ~boundary, expected & ~boundary), differing
    # and on a library Volume's grid (a temporary node is removed again)
    nodes_before = scene.GetNumberOfNodes()
    again = segment_mask_on_volume(scene, node, "lesion", Volume(np.zeros((8, 8, 8)), fine_affine))
    np.testing.assert_array_equal(again, mask)
    assert scene.GetNumberOfNodes() == nodes_before


def test_segment_lookup_and_shape_errors():
    scene = slicer.vtkMRMLScene()
    volume = array_to_volume_node(scene, np.zeros((2, 3, 4), np.float32), np.eye(4), "v")
    node = masks_to_segmentation(scene, {"a": np.ones((2, 3, 4), bool)}, volume)
    ident = segment_id(node, "a")
    assert segment_id(node, ident) == ident
    with pytest.raises(KeyError, match=r"no segment 'b' \(it has \['a'\]\)"):
        segment_id(node, "b")
    with pytest.raises(ValueError, match="has shape"):
        masks_to_segmentation(scene, {"wrong": np.ones((3, 3, 3), bool)}, volume, node=node)


def test_roi_box_as_mask():
    scene = slicer.vtkMRMLScene()
    volume = array_to_volume_node(
        scene, np.zeros((5, 5, 5), np.float32), affine_from_geometry([1, 1, 2], [0, 0, 0], np.eye(3)), "v"
    )
    roi = scene.AddNewNodeByClass("vtkMRMLMarkupsROINode", "roi")
    roi.SetCenter(2.0, 1.0, 4.0)
    roi.SetSize(2.0, 2.0, 4.0)
    # inside: R in [1, 3] -> i 1..3; A in [0, 2] -> j 0..2; S in [2, 6] -> k 1..3 (S = 2 k)
    np.testing.assert_array_equal(roi_to_mask(roi, volume), box((5, 5, 5), (1, 4), (0, 3), (1, 4)))
