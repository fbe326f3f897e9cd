"""Offscreen VTK rendering of one slice as the Slicer panel shows it: the grey volume, the CAM as a
heat-coloured foreground (its own colour table node from WSSSCamLib.mrml, window/level 0..1, values
below the display level transparent, opacity 0.6) and a reference segment's outline in green.

The MRML nodes (volume, CAM volume with its display and colour table, segmentation) are real
slicer-core nodes; the drawing is plain VTK composed like Slicer's slice pipeline (each layer mapped
to RGBA, thresholded voxels transparent, vtkImageBlend with the foreground opacity), since Slicer's
slice views themselves are not part of slicer-core.
Checked pixel by pixel against the expected blend; saved to Resources/Screenshots/slicer_overlay.png
for the README.
"""

from pathlib import Path

import numpy as np
import slicer
import vtk
from vtk.util import numpy_support

from WSSSCamLib.atomic import atomic_path
from WSSSCamLib.data.synthetic import synthetic_batch
from WSSSCamLib.figures.overlays import heat_rgb
from WSSSCamLib.mrml import array_to_volume_node, masks_to_segmentation, segment_to_mask, setup_cam_display
from WSSSCamLib.mrml.colour import cam_rgba

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / "Resources" / "Screenshots" / "slicer_overlay.png"
SIZE = 64  # voxels per side
ZOOM = 8  # screen pixels per voxel
OPACITY = 0.6
LEVEL = 0.2


def scene_nodes():
    """A phantom slice with a lesion, a CAM peaked on the lesion (a hand-made map: this checks the
    display, not a CAM method), and the lesion as a reference segment."""
    batch = synthetic_batch(1, shape=(SIZE, SIZE), positive_fraction=1.0, seed=7)
    image = batch.images[0, 0].numpy()[None]  # 1 x J x I
    lesion = batch.masks[0].numpy()[None]
    j, i = np.nonzero(lesion[0])
    cj, ci = j.mean(), i.mean()
    jj, ii = np.mgrid[0:SIZE, 0:SIZE]
    cam = np.exp(-((jj - cj) ** 2 + (ii - ci) ** 2) / (2 * 7.0**2)).astype(np.float32)[None]
    scene = slicer.vtkMRMLScene()
    volume = array_to_volume_node(scene, image, np.eye(4), "Phantom")
    cam_node = array_to_volume_node(scene, cam, np.eye(4), "WSSSCam grad-cam CAM")
    display = setup_cam_display(scene, cam_node, level=LEVEL)
    segmentation = masks_to_segmentation(scene, {"lesion": lesion}, volume, name="Reference")
    outline_mask = segment_to_mask(scene, segmentation, "lesion", volume)[0]
    return image[0], cam[0], outline_mask, display, (int(round(cj)), int(round(ci)))


def grey_table(low: float, high: float) -> vtk.vtkLookupTable:
    table = vtk.vtkLookupTable()
    table.SetRange(low, high)
    table.SetValueRange(0.0, 1.0)
    table.SetSaturationRange(0.0, 0.0)
    table.SetRampToLinear()
    table.Build()
    return table


def cam_table(display) -> vtk.vtkLookupTable:
    """The CAM's colour table node under its display settings: 256 entries over the window 0..1,
    alpha 0 below the display threshold (what Slicer's slice view does with ApplyThreshold)."""
    values = np.linspace(0.0, 1.0, 256)
    rgba = cam_rgba(display, values)
    table = vtk.vtkLookupTable()
    table.SetNumberOfTableValues(256)
    table.SetRange(0.0, 1.0)
    for e, (r, g, b, a) in enumerate(rgba / 255.0):
        table.SetTableValue(e, r, g, b, a)
    return table


def coloured(array: np.ndarray, table: vtk.vtkLookupTable) -> vtk.vtkImageMapToColors:
    """A J x I array through a lookup table to RGBA (a slice layer, as in Slicer's slice pipeline)."""
    data = vtk.vtkImageData()
    data.SetDimensions(array.shape[1], array.shape[0], 1)
    data.GetPointData().SetScalars(
        numpy_support.numpy_to_vtk(np.ascontiguousarray(array, dtype=np.float32).ravel(), deep=True)
    )
    colours = vtk.vtkImageMapToColors()
    colours.SetInputData(data)
    colours.SetLookupTable(table)
    colours.SetOutputFormatToRGBA()
    return colours


def composited(
    background: vtk.vtkImageMapToColors, foreground: vtk.vtkImageMapToColors, opacity: float
) -> vtk.vtkImageActor:
    """Background and foreground layers blended as Slicer's slice logic does (vtkImageBlend with the
    foreground's opacity, times each voxel's alpha), shown by one image actor without interpolation."""
    blend = vtk.vtkImageBlend()
    blend.AddInputConnection(background.GetOutputPort())
    blend.AddInputConnection(foreground.GetOutputPort())
    blend.SetOpacity(0, 1.0)
    blend.SetOpacity(1, opacity)
    actor = vtk.vtkImageActor()
    actor.GetMapper().SetInputConnection(blend.GetOutputPort())
    actor.SetInterpolate(False)
    return actor


def outline_actor(mask: np.ndarray) -> vtk.vtkActor:
    data = vtk.vtkImageData()
    data.SetDimensions(mask.shape[1], mask.shape[0], 1)
    data.GetPointData().SetScalars(numpy_support.numpy_to_vtk(mask.astype(np.float32).ravel(), deep=True))
    contour = vtk.vtkContourFilter()
    contour.SetInputData(data)
    contour.SetValue(0, 0.5)
    mapper = vtk.vtkPolyDataMapper()
    mapper.SetInputConnection(contour.GetOutputPort())
    mapper.ScalarVisibilityOff()
    actor = vtk.vtkActor()
    actor.SetMapper(mapper)
    actor.GetProperty().SetColor(0.2, 0.9, 0.2)
    actor.GetProperty().SetLineWidth(3)
    actor.GetProperty().LightingOff()
    actor.SetPosition(0, 0, 0.2)
    return actor


def render(image, cam, mask, display) -> np.ndarray:
    """Rows x columns x RGB uint8, row 0 at the bottom (VTK's order); voxel (j, i) covers rows
    j*ZOOM..(j+1)*ZOOM-1 and columns i*ZOOM..(i+1)*ZOOM-1."""
    low, high = np.percentile(image, [1, 99])
    renderer = vtk.vtkRenderer()
    renderer.SetBackground(0, 0, 0)
    renderer.AddActor(composited(coloured(image, grey_table(low, high)), coloured(cam, cam_table(display)), OPACITY))
    renderer.AddActor(outline_actor(mask))
    window = vtk.vtkRenderWindow()
    window.SetOffScreenRendering(1)
    window.SetMultiSamples(0)
    window.AddRenderer(renderer)
    window.SetSize(SIZE * ZOOM, SIZE * ZOOM)
    camera = renderer.GetActiveCamera()
    camera.ParallelProjectionOn()
    centre = (SIZE - 1) / 2.0
    camera.SetFocalPoint(centre, centre, 0)
    camera.SetPosition(centre, centre, 100)
    camera.SetViewUp(0, 1, 0)
    camera.SetParallelScale(SIZE / 2.0)
    renderer.ResetCameraClippingRange()
    window.Render()
    grab = vtk.vtkWindowToImageFilter()
    grab.SetInput(window)
    grab.SetInputBufferTypeToRGB()
    grab.ReadFrontBufferOff()
    grab.Update()
    output = grab.GetOutput()
    width, height, _ = output.GetDimensions()
    pixels = numpy_support.vtk_to_numpy(output.GetPointData().GetScalars()).reshape(height, width, 3).copy()
    with atomic_path(SCREENSHOT) as temporary:
        writer = vtk.vtkPNGWriter()
        writer.SetFileName(str(temporary))
        writer.SetInputConnection(grab.GetOutputPort())
        writer.Write()
    window.Finalize()
    return pixels, (low, high)


def test_slice_with_cam_overlay_and_segment_outline():
    image, cam, mask, display, peak = scene_nodes()
    pixels, (low, high) = render(image, cam, mask, display)
    assert pixels.shape == (SIZE * ZOOM, SIZE * ZOOM, 3)
    assert SCREENSHOT.is_file() and SCREENSHOT.stat().st_size > 1000

    def pixel(j, i):
        return pixels[j * ZOOM + ZOOM // 2, i * ZOOM + ZOOM // 2].astype(float)

    def expected(j, i):
        grey = np.floor(np.clip((image[j, i] - low) / (high - low), 0, 1) * 255.999)  # the grey table's 256 entries
        if cam[j, i] < LEVEL:
            return np.full(3, grey)
        heat = heat_rgb(np.array([np.rint(cam[j, i] * 255) / 255]))[0].astype(float)
        return (1 - OPACITY) * grey + OPACITY * heat

    # heat where the map is high: at the peak the ramp's white-hot end, around it orange-red (red far
    # above blue), each the expected blend
    pj, pi = peak
    assert cam[pj, pi] > 0.9
    np.testing.assert_allclose(pixel(pj, pi), expected(pj, pi), atol=6)
    warm = [(j, i) for j in range(SIZE) for i in range(SIZE) if 0.5 < cam[j, i] < 0.8]
    assert len(warm) > 20
    for j, i in warm:
        value = pixel(j, i)
        assert value[0] > value[2] + 80 and value[0] >= value[1] + 10, (j, i, value)
    # everywhere off the outline: the rendered colour is the expected blend (grey below the level)
    outline = (
        mask ^ np.pad(mask, 1)[2:, 1:-1]
        | mask ^ np.pad(mask, 1)[:-2, 1:-1]
        | mask ^ np.pad(mask, 1)[1:-1, 2:]
        | mask ^ np.pad(mask, 1)[1:-1, :-2]
    )
    checked = 0
    for j in range(2, SIZE - 2, 3):
        for i in range(2, SIZE - 2, 3):
            if outline[j - 1 : j + 2, i - 1 : i + 2].any():
                continue
            np.testing.assert_allclose(
                pixel(j, i), expected(j, i), atol=6, err_msg=f"voxel j={j} i={i} cam={cam[j, i]:.3f}"
            )
            checked += 1
    assert checked > 300
    # cold regions are grey (no tint): far from the peak the channels agree
    far = [(j, i) for j in range(4, SIZE - 4, 5) for i in range(4, SIZE - 4, 5) if cam[j, i] < 0.05]
    assert far and all(np.ptp(pixel(j, i)) <= 3 for j, i in far)
    # the outline is drawn in green along the segment boundary
    green = (pixels[..., 1] > 180) & (pixels[..., 0] < 120) & (pixels[..., 2] < 120)
    boundary_j, boundary_i = np.nonzero(
        mask
        & ~(
            np.pad(mask, 1)[2:, 1:-1]
            & np.pad(mask, 1)[:-2, 1:-1]
            & np.pad(mask, 1)[1:-1, 2:]
            & np.pad(mask, 1)[1:-1, :-2]
        )
    )
    near = [
        green[max(j * ZOOM - ZOOM, 0) : (j + 2) * ZOOM, max(i * ZOOM - ZOOM, 0) : (i + 2) * ZOOM].any()
        for j, i in zip(boundary_j, boundary_i)
    ]
    assert np.mean(near) > 0.95
    assert green.sum() > 4 * ZOOM * len(boundary_j) * 0.3
    # and nowhere far from it
    far_from_mask = ~np.pad(mask, 3).astype(bool)[3:-3, 3:-3]
    for shift in range(-3, 4):
        far_from_mask &= ~np.roll(mask, shift, 0) & ~np.roll(mask, shift, 1)
    assert not green.reshape(SIZE, ZOOM, SIZE, ZOOM).any(axis=(1, 3))[far_from_mask].any()
