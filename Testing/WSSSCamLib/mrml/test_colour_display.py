"""Heat colour table per CAM, the CAM's display node, and showing it as slice-view foreground (slicer-core)."""

import numpy as np
import pytest
import slicer

from WSSSCamLib.figures.overlays import heat_rgb
from WSSSCamLib.mrml import (
    array_to_volume_node,
    heat_colour_table,
    setup_cam_display,
    show_as_foreground,
    slice_composite_nodes,
)
from WSSSCamLib.mrml.colour import cam_rgba
from WSSSCamLib.mrml.display import set_foreground_opacity


def test_heat_table_entries_follow_the_library_ramp():
    scene = slicer.vtkMRMLScene()
    table = heat_colour_table(scene, "grad-cam heat")
    assert table.GetNumberOfColors() == 256 and table.GetName() == "grad-cam heat"
    expected = heat_rgb(np.linspace(0, 1, 256)) / 255.0
    got = np.array([table.GetLookupTable().GetTableValue(e) for e in range(256)])
    np.testing.assert_allclose(got[:, :3], expected, atol=1e-6)
    np.testing.assert_array_equal(got[:, 3], 1.0)
    # black at 0, white at 1, red dominating in the middle of the ramp
    np.testing.assert_allclose(got[0, :3], 0.0, atol=1e-9)
    np.testing.assert_allclose(got[255, :3], 1.0, atol=1e-9)
    assert got[100, 0] > got[100, 1] > got[100, 2]


def test_cam_display_window_level_threshold_and_own_table():
    scene = slicer.vtkMRMLScene()
    cams = [
        array_to_volume_node(scene, np.linspace(0, 1, 24, dtype=np.float32).reshape(2, 3, 4), np.eye(4), n)
        for n in ("grad-cam", "layer-cam")
    ]
    displays = [setup_cam_display(scene, node, level=0.3) for node in cams]
    tables = {d.GetColorNodeID() for d in displays}
    assert len(tables) == 2  # one table per CAM
    display = displays[0]
    assert display.GetColorNode().GetName() == "grad-cam heat"
    assert not display.GetAutoWindowLevel()
    assert (display.GetWindowLevelMin(), display.GetWindowLevelMax()) == (0.0, 1.0)
    assert (display.GetWindow(), display.GetLevel()) == (1.0, 0.5)
    assert display.GetApplyThreshold() and display.GetLowerThreshold() == pytest.approx(0.3)
    rgba = cam_rgba(display, np.array([0.1, 0.3, 1.0]))
    assert rgba[0, 3] == 0 and rgba[1, 3] == 255 and tuple(rgba[2]) == (255, 255, 255, 255)
    np.testing.assert_array_equal(rgba[1, :3], heat_rgb(np.array([round(0.3 * 255) / 255]))[0])
    with pytest.raises(ValueError, match="level"):
        setup_cam_display(scene, cams[0], level=1.5)


def test_cam_is_foreground_of_every_slice_view_with_opacity():
    scene = slicer.vtkMRMLScene()
    composites = []
    for view in ("Red", "Yellow", "Green"):
        composite = slicer.vtkMRMLSliceCompositeNode()
        composite.SetLayoutName(view)
        composites.append(scene.AddNode(composite))
    background = array_to_volume_node(scene, np.zeros((2, 2, 2), np.float32), np.eye(4), "MR")
    cam = array_to_volume_node(scene, np.zeros((2, 2, 2), np.float32), np.eye(4), "CAM")
    changed = show_as_foreground(scene, cam, opacity=0.4, background_node=background)
    assert len(changed) == 3 and len(slice_composite_nodes(scene)) == 3
    for composite in composites:
        assert composite.GetForegroundVolumeID() == cam.GetID()
        assert composite.GetBackgroundVolumeID() == background.GetID()
        assert composite.GetForegroundOpacity() == pytest.approx(0.4)
    set_foreground_opacity(scene, 0.9)
    assert all(c.GetForegroundOpacity() == pytest.approx(0.9) for c in composites)
    with pytest.raises(ValueError, match="opacity"):
        show_as_foreground(scene, cam, opacity=-0.1)
