"""Composable preprocessing of a case: (image, mask) volumes in, (image, mask) volumes out.

``image`` is a C x K x J x I :class:`Volume`, ``mask`` a K x J x I one or None. Transforms that
change the grid (resampling, cropping/padding) update the IJK-to-RAS affine, so geometry is kept
all the way to the outputs. Intensity transforms work per channel and, with ``nonzero_only``,
ignore (and keep at zero) the background outside the head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .volume import Volume

Pair = tuple[Volume, "Volume | None"]
Transform = Callable[[Volume, "Volume | None"], Pair]


def _with_array(volume: Volume, array: np.ndarray, affine: np.ndarray | None = None) -> Volume:
    return Volume(array, volume.ijk_to_ras if affine is None else affine, volume.source)


@dataclass
class Compose:
    """Apply transforms in order."""

    transforms: Sequence[Transform]

    def __call__(self, image: Volume, mask: Volume | None = None) -> Pair:
        for transform in self.transforms:
            image, mask = transform(image, mask)
        return image, mask


DEFAULT_CLIP_PERCENTILES: tuple[float, float] = (0.5, 99.5)
"""The [low, high] percentiles (of non-zero voxels) that intensities are clipped to by default."""


@dataclass
class PercentileClip:
    """Clip each channel to its [low, high] percentiles (of non-zero voxels with ``nonzero_only``)."""

    low: float = DEFAULT_CLIP_PERCENTILES[0]
    high: float = DEFAULT_CLIP_PERCENTILES[1]
    nonzero_only: bool = True

    def __call__(self, image: Volume, mask: Volume | None = None) -> Pair:
        out = image.array.copy()
        for channel in out if out.ndim == 4 else out[None]:  # a K x J x I volume is one channel
            foreground = channel != 0 if self.nonzero_only else None
            values = channel[foreground] if foreground is not None else channel.reshape(-1)
            if values.size:
                lo, hi = np.percentile(values, [self.low, self.high])
                if foreground is not None:
                    channel[foreground] = np.clip(values, lo, hi)
                else:
                    np.clip(channel, lo, hi, out=channel)
        return _with_array(image, out), mask


@dataclass
class ZScore:
    """(x - mean) / std per channel; with ``nonzero_only`` statistics from and output on non-zero voxels."""

    nonzero_only: bool = True

    def __call__(self, image: Volume, mask: Volume | None = None) -> Pair:
        out = image.array.copy()
        for channel in out if out.ndim == 4 else out[None]:  # a K x J x I volume is one channel
            foreground = channel != 0 if self.nonzero_only else None
            values = channel[foreground] if foreground is not None else channel.reshape(-1)
            if values.size:
                std = values.std()
                scaled = (values - values.mean()) / (std if std > 0 else 1.0)
                if foreground is not None:
                    channel[foreground] = scaled
                else:
                    channel[...] = scaled.reshape(channel.shape)
        return _with_array(image, out), mask


@dataclass
class Resample:
    """Resample to ``spacing`` (mm along I, J, K): trilinear for the image, nearest for the mask."""

    spacing: Sequence[float]

    def __call__(self, image: Volume, mask: Volume | None = None) -> Pair:
        factors = image.spacing / np.asarray(self.spacing, dtype=np.float64)  # along I, J, K
        size_kji = tuple(max(1, int(round(n * f))) for n, f in zip(image.shape_kji, factors[::-1]))
        affine = image.ijk_to_ras.copy()
        actual = np.asarray(image.shape_kji[::-1], dtype=np.float64) / np.asarray(
            size_kji[::-1]
        )  # old voxels per new voxel, IJK
        affine[:3, :3] = image.ijk_to_ras[:3, :3] * actual
        affine[:3, 3] = (
            image.ijk_to_ras[:3, :3] @ (0.5 * actual - 0.5) + image.ijk_to_ras[:3, 3]
        )  # keep the field of view
        tensor = torch.from_numpy(image.array)[None]
        resampled = F.interpolate(tensor, size=size_kji, mode="trilinear", align_corners=False)[0].numpy()
        new_mask = None
        if mask is not None:
            m = torch.from_numpy(mask.array)[None, None]
            new_mask = _with_array(mask, F.interpolate(m, size=size_kji, mode="nearest")[0, 0].numpy(), affine)
        return _with_array(image, resampled, affine), new_mask


@dataclass
class CropOrPad:
    """Centre-crop or zero-pad to ``size`` (K, J, I); the affine origin follows the first voxel."""

    size: Sequence[int]

    def __call__(self, image: Volume, mask: Volume | None = None) -> Pair:
        offsets = [(n - s) // 2 for n, s in zip(image.shape_kji, self.size)]  # >0 crop, <0 pad

        def apply(array: np.ndarray) -> np.ndarray:
            lead = array.shape[:-3]
            out = np.zeros(lead + tuple(self.size), dtype=array.dtype)
            src = tuple(
                slice(max(o, 0), max(o, 0) + min(n - max(o, 0), s - max(-o, 0)))
                for o, n, s in zip(offsets, array.shape[-3:], self.size)
            )
            dst = tuple(slice(max(-o, 0), max(-o, 0) + (sl.stop - sl.start)) for o, sl in zip(offsets, src))
            out[(...,) + dst] = array[(...,) + src]
            return out

        affine = image.ijk_to_ras.copy()
        affine[:3, 3] = image.ijk_to_ras[:3, :3] @ np.asarray(offsets[::-1], dtype=np.float64) + image.ijk_to_ras[:3, 3]
        new_mask = None if mask is None else _with_array(mask, apply(mask.array), affine)
        return _with_array(image, apply(image.array), affine), new_mask


@dataclass
class RemoveBackground:
    """Background removal of Syed et al. 2023, per axial slice of ``channel``, applied to every channel.

    8-bit conversion, maximum filter, erosion, Gaussian blur, then k-means with k = 2 on the
    intensities: the brighter cluster is the foreground; everything else is set to zero.
    """

    channel: int = 0
    filter_size: int = 5
    erosion_iterations: int = 2
    sigma: float = 2.0

    def foreground(self, plane: np.ndarray) -> np.ndarray:
        from scipy import ndimage

        low, high = float(plane.min()), float(plane.max())
        if high <= low:
            return np.zeros(plane.shape, dtype=bool)
        eight_bit = np.round((plane - low) / (high - low) * 255)
        filtered = ndimage.maximum_filter(eight_bit, self.filter_size)
        for _ in range(self.erosion_iterations):
            filtered = ndimage.grey_erosion(filtered, size=(3, 3))
        smoothed = ndimage.gaussian_filter(filtered, self.sigma)
        return two_means_foreground(smoothed)

    def __call__(self, image: Volume, mask: Volume | None = None) -> Pair:
        out = image.array.copy()
        for k in range(out.shape[1]):
            keep = self.foreground(out[self.channel, k])
            out[:, k][:, ~keep] = 0
        return _with_array(image, out), mask


def two_means_foreground(values: np.ndarray, iterations: int = 50) -> np.ndarray:
    """k-means with k = 2 on the values (1-D Lloyd iterations); True where the brighter centre wins."""
    flat = values.ravel().astype(np.float64)
    centres = np.array([flat.min(), flat.max()])
    if centres[1] <= centres[0]:
        return np.zeros(values.shape, dtype=bool)
    for _ in range(iterations):
        bright = np.abs(flat - centres[1]) < np.abs(flat - centres[0])
        updated = np.array(
            [
                flat[~bright].mean() if (~bright).any() else centres[0],
                flat[bright].mean() if bright.any() else centres[1],
            ]
        )
        if np.allclose(updated, centres):
            break
        centres = updated
    return (np.abs(flat - centres[1]) < np.abs(flat - centres[0])).reshape(values.shape)
