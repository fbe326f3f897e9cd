"""The panel's run through a child process on a real slicer-core scene: results loaded equal
predict's files, Cancel ends the child within a second and leaves the scene unchanged, a failed run
leaves the scene unchanged and says why in one line."""

import time

import numpy as np
import pytest
import slicer

from WSSSCamLib.data.datasets import read_decathlon
from WSSSCamLib.data.readers import read_volume
from WSSSCamLib.data.recipe import SliceRecipe
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.masks import Threshold
from WSSSCamLib.mrml import masks_to_segmentation, segment_to_mask, volume_to_node
from WSSSCamLib.mrml.background_run import PanelRun
from WSSSCamLib.predict import read_result
from WSSSCamLib.training import TrainConfig
from WSSSCamLib.training.crossval import cross_validate


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("panelrun")
    write_synthetic_dataset(root / "data", cases=4, shape=(6, 32, 32), seed=7, lesion_radii=(0.3, 0.45))
    cross_validate(
        read_decathlon(root / "data"),
        root / "cv",
        "small-cnn",
        SliceRecipe(size=32),
        TrainConfig(epochs=3, patience=0, device="cpu", progress=False, augment=False),
        k=2,
        only_folds=[0],
    )
    return root


def scene_with_case(trained):
    case = [c for c in read_decathlon(trained / "data").cases if read_volume(c.mask).array.any()][0]
    scene = slicer.vtkMRMLScene()
    volume = volume_to_node(scene, read_volume(case.images[0]), "phantom")
    reference = masks_to_segmentation(scene, {"lesion": read_volume(case.mask).array > 0}, volume, name="reference")
    return scene, volume, reference


def node_count(scene):
    return scene.GetNumberOfNodes()


def test_results_are_loaded_from_predicts_files(trained, tmp_path):
    scene, volume, reference = scene_with_case(trained)
    run = PanelRun(
        scene,
        [volume],
        [str(trained / "cv" / "fold0" / "model.pt")],
        tmp_path / "run",
        ["grad-cam", "layer-cam"],
        Threshold("percentile", 90.0),
        ensemble="or",
        empty_when_negative=True,
        device="cpu",
        reference=(reference, reference.GetSegmentation().GetNthSegmentID(0)),
    )
    before = node_count(scene)
    run.start()
    assert node_count(scene) == before  # nothing in the scene while the child computes
    while not run.ready:  # as the panel's timer does: poll; once succeeded, the files are read on a worker thread
        run.poll()
        assert run.state in ("running", "succeeded"), run.error
        time.sleep(0.05)
    assert run._files is not None and node_count(scene) == before
    results = run.load()
    folder = tmp_path / "run" / "out" / "input"
    record = read_result(folder)
    for key, node in results.cam_nodes.items():
        expected = read_volume(folder / record["files"]["cams"][key]).array
        np.testing.assert_array_equal(slicer.util.arrayFromVolume(node), expected)
    assert list(results.masks) == record["segments"] == ["grad-cam p90", "layer-cam p90", "or ensemble p90"]
    for name, relative in record["files"]["masks"].items():
        np.testing.assert_array_equal(
            segment_to_mask(scene, results.segmentation_node, name, volume), read_volume(folder / relative).array > 0
        )
    assert results.metrics_table is not None and [row["result"] for row in results.metrics] == record["segments"]
    truth = segment_to_mask(scene, reference, reference.GetSegmentation().GetNthSegmentID(0), volume)
    for row in results.metrics:  # predict's Dice, recomputed by hand from its mask files and the scene's reference
        mask = read_volume(folder / record["files"]["masks"][row["result"]]).array > 0
        both = np.logical_and(mask, truth).sum()
        expected = 2 * both / (mask.sum() + truth.sum()) if mask.sum() + truth.sum() else 1.0
        assert row["dice"] == pytest.approx(expected) and row["voxels"] == int(mask.sum())
    events = run.process.events
    assert events[0]["event"] == "start" and events[-1]["event"] == "done"


def test_cancel_ends_the_child_within_a_second_and_leaves_the_scene(trained, tmp_path):
    scene, volume, _ = scene_with_case(trained)
    before = node_count(scene)
    # score-cam on every slice keeps the child busy for many seconds on these cores
    run = PanelRun(
        scene,
        [volume],
        [str(trained / "cv" / "fold0" / "model.pt")],
        tmp_path / "run",
        ["score-cam", "smoothgrad-cam++"],
        Threshold("fixed", 0.5),
        device="cpu",
        batch_size=1,
    ).start()
    while not any(e["event"] == "case" for e in run.process.events):  # the child is computing
        run.poll()
        assert run.state == "running", run.error
    seconds = run.cancel()
    assert seconds < 1.0 and run.state == "cancelled"
    assert run.process._process.poll() is not None
    assert node_count(scene) == before
    with pytest.raises(RuntimeError, match="has not succeeded"):
        run.load()


def test_a_failed_run_leaves_the_scene_unchanged_and_says_why(trained, tmp_path):
    scene, volume, _ = scene_with_case(trained)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"not a checkpoint")
    (tmp_path / "broken.json").write_text((trained / "cv" / "fold0" / "model.json").read_text())
    before = node_count(scene)
    run = PanelRun(
        scene, [volume], [str(broken)], tmp_path / "run", ["grad-cam"], Threshold("fixed", 0.5), device="cpu"
    ).start()
    assert run.process.wait(timeout=120) == "failed"
    assert "broken.pt" in run.error and "\n" not in run.error
    assert node_count(scene) == before
