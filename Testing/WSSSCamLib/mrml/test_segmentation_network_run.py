"""The panel's run with a segmentation checkpoint beside a classifier, through the child ``wssscam
predict`` on a real slicer-core scene: the network's segment appears in the volume's results
segmentation beside the CAM segments, its probability as a volume shown like a CAM, both equal to
predict's files; loading again (a rerun) replaces the nodes, never duplicates them."""

import time

import numpy as np
import pytest
import slicer
import torch

from WSSSCamLib.data.readers import read_volume
from WSSSCamLib.data.synthetic import synthetic_batch
from WSSSCamLib.data.volume import affine_from_geometry
from WSSSCamLib.masks import Threshold
from WSSSCamLib.models.zoo import build_model
from WSSSCamLib.mrml import array_to_volume_node, masks_to_segmentation, segment_to_mask
from WSSSCamLib.mrml.background_run import PanelRun, load_predict_results
from WSSSCamLib.predict import read_result
from WSSSCamLib.training.checkpoint import ModelCard, save_checkpoint


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """Untrained small CNN and U-Net checkpoints (the test compares the scene with predict's files)."""
    root = tmp_path_factory.mktemp("segrun")
    recipe = {"size": 16, "axis": "K"}
    torch.manual_seed(0)
    cnn = ModelCard("small-cnn", 1, 2, ["normal", "lesion"], ["FLAIR"], input_size=[16, 16], recipe=recipe)
    unet = ModelCard("monai-unet", 1, 2, ["background", "abnormal"], ["FLAIR"], input_size=[16, 16], recipe=recipe)
    return [
        str(save_checkpoint(build_model("small-cnn", 1, 2), cnn, root / "cnn.pt")),
        str(save_checkpoint(build_model("monai-unet", 1, 2), unet, root / "unet.pt")),
    ]


def names(segmentation_node) -> list[str]:
    segmentation = segmentation_node.GetSegmentation()
    return [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]


def test_the_networks_segment_and_probability_are_published_beside_the_cams(checkpoints, tmp_path):
    batch = synthetic_batch(1, shape=(6, 32, 32), positive_fraction=1.0, seed=5)
    scene = slicer.vtkMRMLScene()
    affine = affine_from_geometry([0.9, 0.8, 3.0], [-14.0, -12.0, 2.0], np.eye(3))
    volume = array_to_volume_node(scene, batch.images[0, 0].numpy(), affine, "phantom")
    reference = masks_to_segmentation(scene, {"lesion": batch.masks[0].numpy()}, volume, name="reference")
    run = PanelRun(
        scene,
        [volume],
        [f"cnn={checkpoints[0]}", f"unet={checkpoints[1]}"],
        tmp_path / "run",
        ["grad-cam"],
        Threshold("fixed", 0.5),
        device="cpu",
        reference=(reference, reference.GetSegmentation().GetNthSegmentID(0)),
    ).start()
    while not run.ready:
        run.poll()
        assert run.state in ("running", "succeeded"), run.error
        time.sleep(0.05)
    results = run.load()
    folder = tmp_path / "run" / "out" / "input"
    record = read_result(folder)
    assert names(results.segmentation_node) == record["segments"] == ["grad-cam t=0.50", "unet segmentation"]
    assert results.segmentation_node.GetName() == "WSSSCam phantom results"
    for name, relative in record["files"]["masks"].items():
        np.testing.assert_array_equal(
            segment_to_mask(scene, results.segmentation_node, name, volume), read_volume(folder / relative).array > 0
        )
    node = results.probability_nodes["unet segmentation"]
    assert node.GetName() == "WSSSCam phantom unet segmentation probability"
    assert node.GetAttribute("WSSSCam.model") == "unet" and node.GetAttribute("WSSSCam.method") == "segmentation"
    expected = read_volume(folder / record["files"]["probabilities"]["unet"]).array
    np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), expected)
    assert node.GetDisplayNode().GetColorNode().GetName() == "WSSSCam phantom unet segmentation probability heat"
    assert list(results.map_nodes) == ["grad-cam", "unet segmentation"]
    assert [row["result"] for row in results.metrics] == ["grad-cam t=0.50", "unet segmentation"]
    assert results.metrics_table.GetTable().GetNumberOfRows() == 2
    count = scene.GetNumberOfNodes()
    again = load_predict_results(scene, volume, folder, Threshold("fixed", 0.5), reference=run.reference)
    assert scene.GetNumberOfNodes() == count  # a rerun refills the same nodes
    assert again.probability_nodes["unet segmentation"].GetID() == node.GetID()
    assert names(again.segmentation_node) == ["grad-cam t=0.50", "unet segmentation"]
    run.cleanup()


def test_a_segmentation_network_alone_needs_no_cam(checkpoints, tmp_path):
    batch = synthetic_batch(1, shape=(4, 32, 32), positive_fraction=1.0, seed=6)
    scene = slicer.vtkMRMLScene()
    volume = array_to_volume_node(scene, batch.images[0, 0].numpy(), np.eye(4), "alone")
    run = PanelRun(scene, [volume], [checkpoints[1]], tmp_path / "run", [], Threshold("fixed", 0.5), device="cpu")
    assert run.start().process.wait(timeout=300) == "succeeded", run.error
    results = run.load()  # unnamed, the model is called by its architecture
    assert results.cam_nodes == {} and list(results.probability_nodes) == ["monai-unet segmentation"]
    assert names(results.segmentation_node) == ["monai-unet segmentation"]
    assert results.masks["monai-unet segmentation"].shape == (4, 32, 32)
    run.cleanup()
