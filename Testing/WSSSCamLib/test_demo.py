"""The README's main job end to end: trains on phantoms, CAMs localise lesions, PNGs written."""

import json

from PIL import Image

from WSSSCamLib.cams import METHODS
from WSSSCamLib.cli import main
from WSSSCamLib.demo import DEMO_METHODS


def test_demo_trains_localises_and_writes_overlays(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--device", "cpu"]) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["test_accuracy"] > 0.6  # beats chance (0.5) on held-out phantoms
    assert set(summary["mean_iou"]) == set(DEMO_METHODS)
    # Lesions cover a few % of the image: an all-foreground guess scores IoU < 0.1. Grad-CAM must do far better.
    assert summary["mean_iou"]["grad-cam"] > 0.2
    grid = Image.open(tmp_path / "cam_grid.png")
    assert grid.width == 64 * (1 + len(DEMO_METHODS))
    assert all((tmp_path / p).is_file() for p in summary["outputs"])
    out = capsys.readouterr().out
    assert "cam_grid.png" in out and "grad-cam" in out


def test_methods_command_lists_every_method(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in METHODS)
