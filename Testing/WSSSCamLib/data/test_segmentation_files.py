"""Scene-free segmentation files: .seg.nrrd read back by slicer-core's own storage node (names,
colours, terminology, overlapping and empty segments), label maps with their sidecar, errors."""

import json

import numpy as np
import pytest

from WSSSCamLib.data.readers import read_volume
from WSSSCamLib.data.segmentation_files import (
    CAM_SEGMENT_TERMINOLOGY,
    SegmentationFileError,
    read_seg_nrrd,
    write_label_map,
    write_seg_nrrd,
)
from WSSSCamLib.data.volume import affine_from_geometry

_c, _s = np.cos(np.radians(25)), np.sin(np.radians(25))
OBLIQUE = affine_from_geometry([0.8, 1.1, 2.5], [10.0, -20.0, 30.0], np.array([[1, 0, 0], [0, _c, -_s], [0, _s, _c]]))


def segments():
    a = np.zeros((4, 5, 6), bool)
    a[1:3, 1:4, 2:5] = True
    b = np.zeros((4, 5, 6), bool)
    b[1, 1, 2:4] = True  # overlaps a: needs its own layer
    c = np.zeros((4, 5, 6), bool)
    c[3, 4, 5] = True  # beside a: shares a's layer
    return {"grad-cam t=0.50": a, "or ensemble t=0.50": b, "corner": c, "empty": np.zeros((4, 5, 6), bool)}


def test_seg_nrrd_is_read_by_slicer_core_with_names_colours_terminology_and_voxels(tmp_path):
    import slicer
    import vtk

    from WSSSCamLib.mrml import array_to_volume_node, segment_to_mask

    masks = segments()
    path = write_seg_nrrd(masks, OBLIQUE, tmp_path / "r.seg.nrrd", colours={"corner": (0.1, 0.2, 0.3)})
    scene = slicer.vtkMRMLScene()
    node = scene.AddNewNodeByClass("vtkMRMLSegmentationNode", "read")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(node)
    segmentation = node.GetSegmentation()
    assert [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())] == list(masks)
    corner = segmentation.GetSegment(segmentation.GetSegmentIdBySegmentName("corner"))
    assert corner.GetColor() == pytest.approx((0.1, 0.2, 0.3))
    terminology = vtk.reference("")
    assert corner.GetTag("TerminologyEntry", terminology) and str(terminology) == CAM_SEGMENT_TERMINOLOGY
    grid = array_to_volume_node(scene, np.zeros((4, 5, 6), np.float32), OBLIQUE, "grid")
    for name, mask in masks.items():
        np.testing.assert_array_equal(segment_to_mask(scene, node, name, grid), mask)
    back, affine = read_seg_nrrd(path)
    assert list(back) == list(masks) and all(np.array_equal(back[n], masks[n]) for n in masks)
    np.testing.assert_allclose(affine, OBLIQUE, atol=1e-9)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_read_seg_nrrd_reads_slicers_own_files(tmp_path):
    import slicer

    from WSSSCamLib.mrml import array_to_volume_node, masks_to_segmentation

    scene = slicer.vtkMRMLScene()
    volume = array_to_volume_node(scene, np.zeros((4, 5, 6), np.float32), OBLIQUE, "grid")
    masks = segments()
    del masks["empty"]
    node = masks_to_segmentation(scene, masks, volume)
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(tmp_path / "slicer.seg.nrrd"))
    assert storage.WriteData(node)
    back, affine = read_seg_nrrd(tmp_path / "slicer.seg.nrrd")
    assert list(back) == list(masks) and all(np.array_equal(back[n], masks[n]) for n in masks)
    np.testing.assert_allclose(affine, OBLIQUE, atol=1e-6)


@pytest.mark.parametrize("name", ["labels.nii.gz", "labels.nrrd"])
def test_label_map_numbers_segments_later_wins_with_a_sidecar(tmp_path, name):
    masks = segments()
    numbers = write_label_map(masks, OBLIQUE, tmp_path / name)
    assert numbers == {"grad-cam t=0.50": 1, "or ensemble t=0.50": 2, "corner": 3, "empty": 4}
    assert json.loads((tmp_path / "labels.labels.json").read_text()) == numbers
    volume = read_volume(tmp_path / name)
    np.testing.assert_allclose(volume.ijk_to_ras, OBLIQUE, atol=1e-5)
    expected = np.zeros((4, 5, 6))
    for number, mask in enumerate(masks.values(), start=1):
        expected[mask] = number
    np.testing.assert_array_equal(volume.array, expected)


def test_errors_name_the_file(tmp_path):
    with pytest.raises(SegmentationFileError, match=r"r.nrrd: a segmentation file must end in .seg.nrrd"):
        write_seg_nrrd(segments(), OBLIQUE, tmp_path / "r.nrrd")
    with pytest.raises(SegmentationFileError, match=r"r.seg.nrrd: no segments to write"):
        write_seg_nrrd({}, OBLIQUE, tmp_path / "r.seg.nrrd")
    with pytest.raises(SegmentationFileError, match=r"one shape"):
        write_seg_nrrd(
            {"a": np.zeros((2, 2, 2), bool), "b": np.zeros((2, 2, 3), bool)}, OBLIQUE, tmp_path / "r.seg.nrrd"
        )
    with pytest.raises(SegmentationFileError, match=r"labels.png: unsupported label-map file type"):
        write_label_map(segments(), OBLIQUE, tmp_path / "labels.png")
    assert not list(tmp_path.iterdir())
