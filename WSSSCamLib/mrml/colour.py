"""A heat colour table node per CAM volume, and the CAM's display set-up.

The table has 256 entries sampled from the library's heat ramp
(:func:`WSSSCamLib.figures.overlays.heat_rgb`: black -> dark red -> red -> orange -> yellow ->
white) for CAM values 0..1. The CAM volume's display node maps 0..1 onto the table (window 1,
level 0.5, no automatic window/level) and makes voxels below ``level`` transparent through the
display node's threshold, so cold regions show the background volume.
"""

from __future__ import annotations

import numpy as np
import slicer

from ..figures.overlays import heat_rgb

HEAT_ENTRIES = 256


def heat_colour_table(scene, name: str, node=None):
    """A ``vtkMRMLColorTableNode`` (user type, ``HEAT_ENTRIES`` opaque entries of the heat ramp) in
    ``scene``, named ``name`` (or ``node`` refilled). Entry e has the colour of value e / 255."""
    if node is None:
        node = scene.AddNewNodeByClass("vtkMRMLColorTableNode", name)
    node.SetTypeToUser()
    node.SetNumberOfColors(HEAT_ENTRIES)
    colours = heat_rgb(np.linspace(0.0, 1.0, HEAT_ENTRIES)) / 255.0
    for entry, (r, g, b) in enumerate(colours):
        node.SetColor(entry, f"{entry / (HEAT_ENTRIES - 1):.3f}", float(r), float(g), float(b), 1.0)
    node.GetLookupTable().SetRange(0.0, 1.0)
    node.SetAttribute("Category", "WSSSCam")
    return node


def setup_cam_display(scene, volume_node, level: float = 0.2, colour_node=None, name: str | None = None):
    """Display a CAM volume (values in [0, 1]) with its own heat table: window/level 0..1, voxels
    below ``level`` transparent. Creates the display node and the table when missing. Returns the
    display node (``vtkMRMLScalarVolumeDisplayNode``)."""
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"display level must be in [0, 1], got {level}")
    display = volume_node.GetDisplayNode()
    if display is None:
        display = scene.AddNewNodeByClass("vtkMRMLScalarVolumeDisplayNode")
        volume_node.SetAndObserveDisplayNodeID(display.GetID())
    if colour_node is None:
        colour_node = heat_colour_table(scene, name or f"{volume_node.GetName()} heat")
    wasModifying = display.StartModify()
    display.SetAndObserveColorNodeID(colour_node.GetID())
    display.AutoWindowLevelOff()
    display.SetWindowLevelMinMax(0.0, 1.0)
    display.AutoThresholdOff()
    display.SetLowerThreshold(float(level))
    display.SetUpperThreshold(1.0e6)
    display.SetApplyThreshold(1)
    display.SetInterpolate(1)
    display.EndModify(wasModifying)
    return display


def cam_rgba(display_node, values: np.ndarray) -> np.ndarray:
    """RGBA (uint8, trailing axis) that ``display_node`` gives CAM ``values``: the colour table entry
    under its window/level, alpha 0 below its lower threshold (as Slicer's slice views draw it)."""
    table = slicer.vtkMRMLColorTableNode.SafeDownCast(display_node.GetColorNode())
    low, high = display_node.GetWindowLevelMin(), display_node.GetWindowLevelMax()
    v = np.clip((np.asarray(values, dtype=np.float64) - low) / max(high - low, 1e-12), 0.0, 1.0)
    count = table.GetNumberOfColors()
    entries = np.rint(v * (count - 1)).astype(int)
    lut = np.array([table.GetLookupTable().GetTableValue(e) for e in range(count)])
    rgba = (lut[entries] * 255).round().astype(np.uint8)
    if display_node.GetApplyThreshold():
        rgba[..., 3] = np.where(np.asarray(values) < display_node.GetLowerThreshold(), 0, rgba[..., 3])
    return rgba
