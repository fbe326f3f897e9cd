"""Showing a CAM volume in the slice views: as the foreground layer of every slice composite node.

Each slice view (Red, Yellow, Green, ...) has a ``vtkMRMLSliceCompositeNode`` in the scene naming
its background, foreground and label layers; setting the foreground volume and its opacity there is
what Slicer's own "Set as foreground" does, and works for any layout.
"""

from __future__ import annotations


def slice_composite_nodes(scene) -> list:
    """All ``vtkMRMLSliceCompositeNode`` of ``scene`` (one per slice view)."""
    nodes = scene.GetNodesByClass("vtkMRMLSliceCompositeNode")
    nodes.UnRegister(scene)  # the scene hands over a new collection; Python keeps the only reference
    return [nodes.GetItemAsObject(i) for i in range(nodes.GetNumberOfItems())]


def show_as_foreground(scene, volume_node, opacity: float = 0.5, background_node=None) -> list:
    """Make ``volume_node`` the foreground (with ``opacity`` in [0, 1]) of every slice view, and
    ``background_node`` (when given) the background. Returns the composite nodes changed."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"foreground opacity must be in [0, 1], got {opacity}")
    changed = []
    for composite in slice_composite_nodes(scene):
        composite.SetForegroundVolumeID(volume_node.GetID() if volume_node is not None else None)
        composite.SetForegroundOpacity(float(opacity))
        if background_node is not None:
            composite.SetBackgroundVolumeID(background_node.GetID())
        changed.append(composite)
    return changed


def set_foreground_opacity(scene, opacity: float) -> None:
    """Set the foreground opacity of every slice view (the panel's opacity slider)."""
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"foreground opacity must be in [0, 1], got {opacity}")
    for composite in slice_composite_nodes(scene):
        composite.SetForegroundOpacity(float(opacity))
