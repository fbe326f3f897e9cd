"""Heat colours, overlays and atomic PNG writing."""

import numpy as np
from PIL import Image

from WSSSCamLib.figures import heat_rgb, overlay_rgb, write_png


def test_heat_ramp_runs_from_black_to_white_through_red():
    colours = heat_rgb(np.array([0.0, 0.45, 1.0]))
    assert colours[0].tolist() == [0, 0, 0] and colours[2].tolist() == [255, 255, 255]
    assert colours[1, 0] > 200 and colours[1, 2] < 50


def test_overlay_is_hot_where_the_map_is_high_and_grey_where_it_is_zero():
    image = np.linspace(0, 1, 32 * 32).reshape(32, 32)
    cam = np.zeros((32, 32))
    cam[8:16, 8:16] = 0.5  # red on the heat ramp
    rgb = overlay_rgb(image, cam, opacity=0.8)
    hot, cold = rgb[12, 12].astype(int), rgb[24, 24].astype(int)
    assert hot[0] > hot[2] + 100  # red/yellow dominates inside the high region
    assert cold[0] == cold[1] == cold[2]  # untouched grey outside


def test_outline_is_drawn_in_green_on_the_boundary_only():
    mask = np.zeros((10, 10), dtype=bool)
    mask[3:7, 3:7] = True
    rgb = overlay_rgb(np.zeros((10, 10)), np.zeros((10, 10)), outline=mask)
    assert rgb[3, 3].tolist() == [0, 255, 0] and rgb[5, 5].tolist() != [0, 255, 0]


def test_write_png_replaces_atomically_and_leaves_no_temporaries(tmp_path):
    path = tmp_path / "sub" / "a.png"
    write_png(path, np.zeros((4, 5, 3), np.uint8))
    write_png(path, np.full((4, 5, 3), 200, np.uint8))
    assert np.asarray(Image.open(path)).max() == 200
    assert [p.name for p in path.parent.iterdir()] == ["a.png"]


def test_written_files_get_normal_permissions(tmp_path):
    import os
    import stat

    path = write_png(tmp_path / "b.png", np.zeros((2, 2, 3), np.uint8))
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~mask
