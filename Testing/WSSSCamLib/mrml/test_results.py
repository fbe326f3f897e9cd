"""End to end under slicer-core: CAMs of two tiny models on a synthetic volume with an oblique,
anisotropic grid, published as CAM nodes, segments, metrics and agreement tables."""

import numpy as np
import pytest
import slicer
import torch

from WSSSCamLib.data.synthetic import synthetic_batch
from WSSSCamLib.data.volume import affine_from_geometry
from WSSSCamLib.masks import Threshold
from WSSSCamLib.models.zoo import build_model
from WSSSCamLib.mrml import (
    array_to_volume_node,
    dataframe_from_table_node,
    iter_cam_run,
    masks_to_segmentation,
    node_to_volume,
    nodes_to_volume,
    publish_results,
    segment_to_mask,
)
from WSSSCamLib.training.checkpoint import ModelCard

_c, _s = np.cos(np.radians(15)), np.sin(np.radians(15))
GRID = affine_from_geometry([0.9, 0.9, 3.0], [-14.0, -14.0, 0.0], np.array([[_c, -_s, 0], [_s, _c, 0], [0, 0, 1]]))


def tiny_model(seed: int):
    torch.manual_seed(seed)
    card = ModelCard(
        architecture="small-cnn",
        in_channels=1,
        num_classes=2,
        class_names=["normal", "lesion"],
        channel_names=["FLAIR"],
        input_size=[32, 32],
        recipe={"size": 32, "axis": "K"},
    )
    return build_model("small-cnn", 1, 2).eval(), card


def iou(a, b):
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    union = (a | b).sum()
    return 1.0 if union == 0 else (a & b).sum() / union


@pytest.fixture(scope="module")
def run():
    batch = synthetic_batch(1, shape=(6, 32, 32), positive_fraction=1.0, seed=3)
    scene = slicer.vtkMRMLScene()
    for view in ("Red", "Green"):
        composite = slicer.vtkMRMLSliceCompositeNode()
        composite.SetLayoutName(view)
        scene.AddNode(composite)
    volume_node = array_to_volume_node(scene, batch.images[0, 0], GRID, "FLAIR")
    reference = masks_to_segmentation(scene, {"lesion": batch.masks[0].numpy()}, volume_node, name="reference")
    models = {"cnn-a": tiny_model(0), "cnn-b": tiny_model(1)}
    steps = list(
        iter_cam_run(nodes_to_volume([volume_node]), models, ["grad-cam", "layer-cam"], batch_size=4, device="cpu")
    )
    cams = steps[-1][3]
    published = publish_results(
        scene,
        volume_node,
        cams,
        Threshold("fixed", 0.4),
        ensemble="and",
        reference=(reference, "lesion"),
        opacity=0.6,
        display_level=0.25,
    )
    return scene, volume_node, batch, steps, cams, published


def test_progress_is_reported_per_batch_and_per_model(run):
    _, _, _, steps, cams, _ = run
    # 6 slices in batches of 4: two batches per model, two models
    assert [(s[0], s[1], s[2]) for s in steps[:-1]] == [
        ("cnn-a", 4, 12),
        ("cnn-a", 6, 12),
        ("cnn-b", 10, 12),
        ("cnn-b", 12, 12),
    ]
    assert steps[-1][:3] == ("", 12, 12) and set(cams) == {"cnn-a", "cnn-b"}
    assert tuple(cams["cnn-a"].maps["grad-cam"].shape) == (6, 32, 32)


def test_cam_nodes_in_the_input_geometry_with_heat_display_and_foreground(run):
    scene, volume_node, _, _, cams, published = run
    assert list(published.cam_nodes) == ["cnn-a grad-cam", "cnn-a layer-cam", "cnn-b grad-cam", "cnn-b layer-cam"]
    node = published.cam_nodes["cnn-b layer-cam"]
    assert node.GetName() == "WSSSCam cnn-b layer-cam CAM"
    back = node_to_volume(node)
    np.testing.assert_allclose(back.ijk_to_ras, GRID, atol=1e-12)
    np.testing.assert_array_equal(back.array, cams["cnn-b"].maps["layer-cam"].numpy())
    display = node.GetDisplayNode()
    assert display.GetColorNode().GetName() == "WSSSCam cnn-b layer-cam CAM heat"
    assert display.GetApplyThreshold() and display.GetLowerThreshold() == pytest.approx(0.25)
    tables = {n.GetDisplayNode().GetColorNodeID() for n in published.cam_nodes.values()}
    assert len(tables) == 4
    composites = [scene.GetNthNodeByClass(i, "vtkMRMLSliceCompositeNode") for i in range(2)]
    first = published.cam_nodes["cnn-a grad-cam"]
    assert all(
        c.GetForegroundVolumeID() == first.GetID() and c.GetBackgroundVolumeID() == volume_node.GetID()
        for c in composites
    )
    assert all(c.GetForegroundOpacity() == pytest.approx(0.6) for c in composites)


def test_segments_are_the_thresholded_maps_and_their_and_ensemble(run):
    scene, volume_node, _, _, cams, published = run
    segmentation = published.segmentation_node.GetSegmentation()
    names = [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]
    assert names == [
        "cnn-a grad-cam t=0.40",
        "cnn-a layer-cam t=0.40",
        "cnn-b grad-cam t=0.40",
        "cnn-b layer-cam t=0.40",
        "and ensemble t=0.40",
    ]
    members = []
    for model in ("cnn-a", "cnn-b"):
        for method in ("grad-cam", "layer-cam"):
            expected = cams[model].maps[method].numpy() > np.float32(0.4)
            members.append(expected)
            np.testing.assert_array_equal(
                segment_to_mask(scene, published.segmentation_node, f"{model} {method} t=0.40", volume_node), expected
            )
    np.testing.assert_array_equal(
        segment_to_mask(scene, published.segmentation_node, "and ensemble t=0.40", volume_node),
        np.logical_and.reduce(members),
    )


def test_metrics_and_agreement_tables_match_a_hand_computation(run):
    _, _, batch, _, cams, published = run
    reference = batch.masks[0].numpy()
    frame = dataframe_from_table_node(published.metrics_table)
    assert published.metrics_table.GetName() == "WSSSCam metrics" and len(frame) == 5
    voxel_cc = 0.9 * 0.9 * 3.0 / 1000
    for row in frame.to_dict("records"):
        mask = published.masks[row["result"]].numpy()
        inter = (mask & reference).sum()
        total = mask.sum() + reference.sum()
        assert row["dice"] == pytest.approx(2 * inter / total if total else 1.0, abs=1e-12)
        assert row["iou"] == pytest.approx(iou(mask, reference), abs=1e-12)
        assert row["volume_cc"] == pytest.approx(mask.sum() * voxel_cc, rel=1e-9)
        assert row["reference_cc"] == pytest.approx(reference.sum() * voxel_cc, rel=1e-9)
    assert published.metrics_table.GetColumnUnitLabel("volume_cc") == "cc"
    agreement = dataframe_from_table_node(published.agreement_table).to_dict("records")
    assert [(r["agreement"], r["fixed"]) for r in agreement] == [
        ("across methods", "cnn-a"),
        ("across methods", "cnn-b"),
        ("across models", "grad-cam"),
        ("across models", "layer-cam"),
    ]
    m = {
        (mo, me): cams[mo].maps[me].numpy() > np.float32(0.4)
        for mo in ("cnn-a", "cnn-b")
        for me in ("grad-cam", "layer-cam")
    }
    assert agreement[0]["mean_iou"] == pytest.approx(
        iou(m[("cnn-a", "grad-cam")], m[("cnn-a", "layer-cam")]), abs=1e-12
    )
    assert agreement[3]["mean_iou"] == pytest.approx(
        iou(m[("cnn-a", "layer-cam")], m[("cnn-b", "layer-cam")]), abs=1e-12
    )


def test_rerun_refills_nodes_and_mean_ensemble_needs_a_fixed_threshold(run):
    scene, volume_node, _, _, cams, published = run
    volumes = scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode")
    colours = scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode")
    again = publish_results(
        scene,
        volume_node,
        cams,
        Threshold("fixed", 0.5),
        ensemble="mean",
        segmentation_node=published.segmentation_node,
    )
    assert scene.GetNumberOfNodesByClass("vtkMRMLScalarVolumeNode") == volumes
    assert scene.GetNumberOfNodesByClass("vtkMRMLColorTableNode") == colours
    assert again.segmentation_node is published.segmentation_node
    assert published.segmentation_node.GetSegmentation().GetNumberOfSegments() == 10  # 5 at t=0.40, 5 at t=0.50
    mean = np.mean([cams[mo].maps[me].numpy() for mo in ("cnn-a", "cnn-b") for me in ("grad-cam", "layer-cam")], axis=0)
    np.testing.assert_array_equal(again.masks["mean ensemble t=0.50"].numpy(), mean > np.float32(0.5))
    with pytest.raises(ValueError, match="'mean' ensemble thresholds the mean map with a fixed t"):
        publish_results(scene, volume_node, cams, Threshold("otsu"), ensemble="mean")
    single = publish_results(scene, volume_node, {"cnn-a": cams["cnn-a"]}, Threshold("percentile", 90.0))
    assert list(single.cam_nodes) == ["grad-cam", "layer-cam"] and "grad-cam p90" in single.masks
    assert single.metrics_table is None and [r["agreement"] for r in single.agreement] == ["across methods"]
