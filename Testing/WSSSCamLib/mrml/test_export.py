"""Export of segmentations and CAM volumes, written and read back (slicer-core, real MRML writers)."""

import errno
import json
import sys
from pathlib import Path

import nrrd
import numpy as np
import pytest
import slicer
from dicom_series import write_dicom_series

from WSSSCamLib.data.readers import read_nifti, read_nrrd
from WSSSCamLib.data.volume import affine_from_geometry
from WSSSCamLib.mrml import (
    ExportError,
    array_to_volume_node,
    export_dicom_seg,
    export_segmentation_labelmap,
    export_segmentation_seg_nrrd,
    export_volume,
    masks_to_segmentation,
    segment_to_mask,
)

_c, _s = np.cos(np.radians(25)), np.sin(np.radians(25))
OBLIQUE = affine_from_geometry([0.8, 1.1, 2.5], [10.0, -20.0, 30.0], np.array([[1, 0, 0], [0, _c, -_s], [0, _s, _c]]))


def scene_with_results():
    scene = slicer.vtkMRMLScene()
    cam = np.random.default_rng(1).random((4, 5, 6)).astype(np.float32)
    volume = array_to_volume_node(scene, cam, OBLIQUE, "grad-cam")
    a = np.zeros((4, 5, 6), bool)
    a[1:3, 1:4, 2:5] = True
    b = np.zeros((4, 5, 6), bool)
    b[0, 0, :2] = True
    segmentation = masks_to_segmentation(scene, {"grad-cam t=0.5": a, "or ensemble": b}, volume)
    return scene, volume, segmentation, cam, a, b


def no_temporaries(folder):
    return not [p.name for p in folder.iterdir() if p.name.startswith(".")]


def test_seg_nrrd_written_and_read_back(tmp_path):
    scene, volume, segmentation, _, a, b = scene_with_results()
    path = export_segmentation_seg_nrrd(segmentation, tmp_path / "results.seg.nrrd")
    assert path.is_file() and no_temporaries(tmp_path)
    other = slicer.vtkMRMLScene()
    loaded = other.AddNewNodeByClass("vtkMRMLSegmentationNode", "loaded")
    storage = slicer.vtkMRMLSegmentationStorageNode()
    storage.SetFileName(str(path))
    assert storage.ReadData(loaded)
    names = [
        loaded.GetSegmentation().GetNthSegment(n).GetName()
        for n in range(loaded.GetSegmentation().GetNumberOfSegments())
    ]
    assert names == ["grad-cam t=0.5", "or ensemble"]
    grid = array_to_volume_node(other, np.zeros((4, 5, 6), np.float32), OBLIQUE, "grid")
    np.testing.assert_array_equal(segment_to_mask(other, loaded, "grad-cam t=0.5", grid), a)
    np.testing.assert_array_equal(segment_to_mask(other, loaded, "or ensemble", grid), b)
    with pytest.raises(ExportError, match=r"results.nrrd: a segmentation file must end in .seg.nrrd"):
        export_segmentation_seg_nrrd(segmentation, tmp_path / "results.nrrd")


@pytest.mark.parametrize("name", ["cam.nrrd", "cam.nii.gz"])
def test_cam_volume_written_with_geometry(tmp_path, name):
    scene, volume, _, cam, _, _ = scene_with_results()
    path = export_volume(volume, tmp_path / name)
    back = read_nrrd(path) if name.endswith(".nrrd") else read_nifti(path)
    np.testing.assert_allclose(back.array, cam, atol=1e-7)
    np.testing.assert_allclose(back.ijk_to_ras, OBLIQUE, atol=1e-5)
    assert no_temporaries(tmp_path)


def test_labelmap_nifti_with_label_names(tmp_path):
    scene, volume, segmentation, _, a, b = scene_with_results()
    nodes_before = scene.GetNumberOfNodes()
    labels = export_segmentation_labelmap(scene, segmentation, tmp_path / "results.nii.gz", volume)
    assert labels == {"grad-cam t=0.5": 1, "or ensemble": 2}
    assert json.loads((tmp_path / "results.labels.json").read_text()) == labels
    back = read_nifti(tmp_path / "results.nii.gz")
    np.testing.assert_allclose(back.ijk_to_ras, OBLIQUE, atol=1e-5)
    np.testing.assert_array_equal(back.array, a * 1.0 + b * 2.0)
    assert scene.GetNumberOfNodes() == nodes_before and no_temporaries(tmp_path)


def test_a_failing_writer_leaves_the_previous_file_and_no_temporary(tmp_path, monkeypatch):
    scene, volume, _, _, _, _ = scene_with_results()
    target = tmp_path / "cam.nrrd"
    target.write_text("previous")

    def half_write(filename, data, header=None, **kwargs):  # the disk fills up half way
        Path(filename).write_text("half")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(nrrd, "write", half_write)
    with pytest.raises(ExportError, match=r"cam.nrrd: .*No space left on device"):
        export_volume(volume, target)
    assert target.read_text() == "previous" and no_temporaries(tmp_path)
    with pytest.raises(ExportError, match=r"cam.png: unsupported volume file type"):
        export_volume(volume, tmp_path / "cam.png")


def test_dicom_seg_refused_with_a_reason(tmp_path, monkeypatch):
    scene, volume, segmentation, _, _, _ = scene_with_results()
    with pytest.raises(ExportError, match=r"seg.dcm: volume 'grad-cam' was not loaded from DICOM"):
        export_dicom_seg(scene, segmentation, volume, tmp_path / "seg.dcm", [])
    volume.SetAttribute("DICOM.instanceUIDs", "1.2.3.4 1.2.3.5")
    monkeypatch.setitem(sys.modules, "highdicom", None)  # as if it were not installed
    with pytest.raises(ExportError, match=r"seg.dcm: DICOM SEG export needs the 'highdicom' package"):
        export_dicom_seg(scene, segmentation, volume, tmp_path / "seg.dcm", [])
    assert not list(tmp_path.iterdir())


def test_dicom_seg_refers_to_the_source_images_frame_by_frame(tmp_path):
    hd = pytest.importorskip("highdicom")
    from WSSSCamLib.data.readers import read_dicom_series
    from WSSSCamLib.mrml import volume_to_node

    files = write_dicom_series(tmp_path / "series")
    volume = read_dicom_series(tmp_path / "series")
    scene = slicer.vtkMRMLScene()
    node = volume_to_node(scene, volume, "MR")
    import pydicom

    uids = [str(pydicom.dcmread(f).SOPInstanceUID) for f in files]
    node.SetAttribute("DICOM.instanceUIDs", " ".join(uids))  # as Slicer's DICOM loader does
    mask = np.zeros(volume.shape_kji, bool)
    mask[1, 1:3, 2:5] = True
    mask[2, 0, 0] = True
    segmentation = masks_to_segmentation(scene, {"grad-cam t=0.50": mask}, node)
    path = export_dicom_seg(scene, segmentation, node, tmp_path / "out" / "seg.dcm", files)
    seg = hd.seg.segread(path)
    assert seg.SegmentSequence[0].SegmentLabel == "grad-cam t=0.50"
    assert str(seg.FrameOfReferenceUID) == str(pydicom.dcmread(files[0]).FrameOfReferenceUID)
    # file k lies at slice k of the volume (the reader sorts by position), rows = J, columns = I
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=uids, segment_numbers=[1], ignore_spatial_locations=True
    )
    np.testing.assert_array_equal(pixels[..., 0].astype(bool), mask)
    assert no_temporaries(tmp_path / "out")
