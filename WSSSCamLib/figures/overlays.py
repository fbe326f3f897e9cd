"""Heat-coloured CAM overlays on grey images, as RGB arrays and PNG files (NumPy at the edge).

Arrays are H x W in row-major (tensor) order; CAM values are expected in [0, 1].
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import atomic_path

# Heat ramp: black -> dark red -> red -> orange -> yellow -> white (like Slicer's "Heat" look).
_HEAT_STOPS = np.array([0.0, 0.2, 0.45, 0.65, 0.85, 1.0])
_HEAT_COLOURS = np.array(
    [[0, 0, 0], [120, 0, 0], [230, 30, 0], [255, 140, 0], [255, 230, 40], [255, 255, 255]], dtype=np.float64
)


def heat_rgb(values: np.ndarray) -> np.ndarray:
    """Map values in [0, 1] (any shape) to heat colours, uint8 with a trailing RGB axis."""
    v = np.clip(np.asarray(values, dtype=np.float64), 0.0, 1.0)
    channels = [np.interp(v, _HEAT_STOPS, _HEAT_COLOURS[:, i]) for i in range(3)]
    return np.stack(channels, axis=-1).round().astype(np.uint8)


def grey_rgb(image: np.ndarray, low_percentile: float = 1.0, high_percentile: float = 99.0) -> np.ndarray:
    """An intensity image (H x W) as grey RGB uint8, windowed between two percentiles."""
    image = np.asarray(image, dtype=np.float64)
    low, high = np.percentile(image, [low_percentile, high_percentile])
    scaled = np.clip((image - low) / (high - low), 0, 1) if high > low else np.zeros_like(image)
    return np.repeat((scaled * 255).round().astype(np.uint8)[..., None], 3, axis=-1)


def overlay_rgb(
    image: np.ndarray, cam: np.ndarray, opacity: float = 0.6, outline: np.ndarray | None = None
) -> np.ndarray:
    """Blend the heat colours of ``cam`` over the grey ``image``; opacity grows with the CAM value so
    that cold regions show the anatomy. ``outline``: a boolean mask whose boundary is drawn in green."""
    grey = grey_rgb(image).astype(np.float64)
    cam = np.clip(np.asarray(cam, dtype=np.float64), 0, 1)
    alpha = (opacity * np.clip(cam * 2.0, 0, 1))[..., None]
    blended = (1 - alpha) * grey + alpha * heat_rgb(cam)
    if outline is not None:
        mask = np.asarray(outline, dtype=bool)
        interior = mask.copy()
        interior[1:, :] &= mask[:-1, :]
        interior[:-1, :] &= mask[1:, :]
        interior[:, 1:] &= mask[:, :-1]
        interior[:, :-1] &= mask[:, 1:]
        blended[mask & ~interior] = (0, 255, 0)
    return blended.round().astype(np.uint8)


def write_png(path: str | Path, rgb: np.ndarray) -> Path:
    """Write an RGB uint8 array as PNG atomically (temporary file in the same folder, then rename)."""
    with atomic_path(path) as temporary:
        Image.fromarray(np.asarray(rgb, dtype=np.uint8)).save(temporary, format="PNG")
    return Path(path)
