"""Under slicer-core: each input volume keeps its own result nodes (issue 12, defect 4), and the CAM
segments carry DICOM-style terminology."""

import numpy as np
import slicer
import torch

from WSSSCamLib.data.synthetic import synthetic_batch
from WSSSCamLib.masks import Threshold
from WSSSCamLib.models.zoo import build_model
from WSSSCamLib.mrml import (
    CAM_SEGMENT_TERMINOLOGY,
    array_to_volume_node,
    iter_cam_run,
    node_to_volume,
    nodes_to_volume,
    publish_for_volume,
)
from WSSSCamLib.training.checkpoint import ModelCard


def cams_of(volume_node):
    torch.manual_seed(0)
    card = ModelCard(
        architecture="small-cnn",
        in_channels=1,
        num_classes=2,
        class_names=["normal", "lesion"],
        channel_names=["FLAIR"],
        input_size=[32, 32],
        recipe={"size": 32, "axis": "K"},
    )
    models = {"cnn": (build_model("small-cnn", 1, 2).eval(), card)}
    return list(
        iter_cam_run(nodes_to_volume([volume_node]), models, ["grad-cam", "layer-cam"], batch_size=8, device="cpu")
    )[-1][3]


def class_count(scene, class_name):
    return scene.GetNumberOfNodesByClass(class_name)


def test_runs_on_two_volumes_keep_their_own_nodes_and_a_rerun_refills():
    scene = slicer.vtkMRMLScene()
    batch = synthetic_batch(2, shape=(4, 32, 32), positive_fraction=1.0, seed=1)
    first = array_to_volume_node(scene, batch.images[0, 0], np.eye(4), "case A")
    second = array_to_volume_node(scene, batch.images[1, 0], np.eye(4), "case B")
    twin = array_to_volume_node(scene, batch.images[1, 0], np.eye(4), "case A")  # same name as the first
    out_a = publish_for_volume(scene, first, cams_of(first), Threshold("fixed", 0.4), ensemble="and")
    cam_a = node_to_volume(out_a.cam_nodes["grad-cam"]).array.copy()
    out_b = publish_for_volume(scene, second, cams_of(second), Threshold("fixed", 0.4), ensemble="and")
    out_twin = publish_for_volume(scene, twin, cams_of(twin), Threshold("fixed", 0.4))
    assert out_a.cam_nodes["grad-cam"].GetName() == "WSSSCam case A grad-cam CAM"
    assert out_b.cam_nodes["grad-cam"].GetName() == "WSSSCam case B grad-cam CAM"
    assert out_twin.segmentation_node.GetName() == f"WSSSCam case A ({twin.GetID()}) results"
    assert (
        len({out_a.segmentation_node.GetID(), out_b.segmentation_node.GetID(), out_twin.segmentation_node.GetID()}) == 3
    )
    np.testing.assert_array_equal(node_to_volume(out_a.cam_nodes["grad-cam"]).array, cam_a)  # untouched by B
    assert out_b.cam_nodes["grad-cam"].GetAttribute("WSSSCam.volumeID") == second.GetID()
    # a rerun on A with another threshold: same nodes, only this run's segments
    segmentations = class_count(scene, "vtkMRMLSegmentationNode")
    rerun = publish_for_volume(scene, first, cams_of(first), Threshold("fixed", 0.6))
    assert class_count(scene, "vtkMRMLSegmentationNode") == segmentations
    assert rerun.segmentation_node.GetID() == out_a.segmentation_node.GetID()
    assert rerun.cam_nodes["grad-cam"].GetID() == out_a.cam_nodes["grad-cam"].GetID()
    segmentation = rerun.segmentation_node.GetSegmentation()
    names = sorted(segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments()))
    assert names == ["grad-cam t=0.60", "layer-cam t=0.60"]


def test_cam_segments_carry_the_terminology_entry_tag():
    scene = slicer.vtkMRMLScene()
    batch = synthetic_batch(1, shape=(4, 32, 32), positive_fraction=1.0, seed=2)
    volume = array_to_volume_node(scene, batch.images[0, 0], np.eye(4), "FLAIR")
    out = publish_for_volume(scene, volume, cams_of(volume), Threshold("fixed", 0.5), ensemble="or")
    segmentation = out.segmentation_node.GetSegmentation()
    assert segmentation.GetNumberOfSegments() == 3
    for index in range(3):
        segment = segmentation.GetNthSegment(index)
        assert segment.GetTerminology() == CAM_SEGMENT_TERMINOLOGY
        fields = CAM_SEGMENT_TERMINOLOGY.split("~")
        assert len(fields) == 7 and fields[2] == "SCT^4147007^Mass"


def test_a_rerun_with_fewer_methods_removes_the_earlier_runs_extra_nodes():
    scene = slicer.vtkMRMLScene()
    batch = synthetic_batch(2, shape=(4, 32, 32), positive_fraction=1.0, seed=2)
    first = array_to_volume_node(scene, batch.images[0, 0], np.eye(4), "case A")
    second = array_to_volume_node(scene, batch.images[1, 0], np.eye(4), "case B")
    both = cams_of(first)
    publish_for_volume(scene, first, both, Threshold("fixed", 0.4))
    other = publish_for_volume(scene, second, cams_of(second), Threshold("fixed", 0.4))
    assert scene.GetFirstNodeByName("WSSSCam case A layer-cam CAM") is not None
    assert scene.GetFirstNodeByName("WSSSCam case A agreement") is not None
    only_grad = {
        "cnn": type(both["cnn"])({"grad-cam": both["cnn"].maps["grad-cam"]}, both["cnn"].probabilities, 1, "K")
    }
    rerun = publish_for_volume(scene, first, only_grad, Threshold("fixed", 0.4))
    assert list(rerun.cam_nodes) == ["grad-cam"]
    for gone in ("WSSSCam case A layer-cam CAM", "WSSSCam case A layer-cam CAM heat", "WSSSCam case A agreement"):
        assert scene.GetFirstNodeByName(gone) is None, gone
    assert scene.GetFirstNodeByName("WSSSCam case A grad-cam CAM") is not None
    assert all(scene.GetNodeByID(node.GetID()) is not None for node in other.cam_nodes.values())  # B untouched
    assert scene.GetNodeByID(first.GetID()) is not None and scene.GetNodeByID(second.GetID()) is not None
