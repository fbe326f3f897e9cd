"""Superpixel pooling: over-segment the image, then decide per superpixel from the CAM mask or the CAM.

A CAM is coarse (here upsampled from a 96 px network input) and spills over tissue boundaries; the
image's own regions are sharper. Each sample's image is cut into superpixels (regions of similar
intensity), and every superpixel becomes foreground or background as a whole:

- ``pool=mask`` (default): foreground when the fraction of its pixels inside the CAM mask is strictly
  above ``min_fraction`` (default 0.5, i.e. more than half of the superpixel is in the mask);
- ``pool=map``: foreground when its mean CAM value is strictly above ``min_mean`` (default 0.5),
  the DESIGN's "average the CAM inside each region, then threshold" (the incoming mask only decides
  whether the sample is refined at all).

Either way a sample whose incoming mask is empty stays empty, so that a gate or any earlier step
that emptied it is not undone.

The strict ">" follows the library's threshold convention (foreground = value > cut).

Two over-segmentations, both from scikit-image:

- :class:`Slic` (``slic``): SLIC, Achanta et al. 2012 (k-means in intensity + position space, seeded on
  a grid, ``skimage.segmentation.slic``); 2D slices and 3D volumes (supervoxels; ``n`` counts per
  sample, so a volume needs a larger ``n`` than a slice for the same region size; voxels are taken as
  isotropic). Multi-channel images use every channel (``channel_axis``); scikit-image rescales the
  sample to [0, 1] over all channels first (so ``compactness`` does not depend on the intensity
  scale) and the Lab conversion is off (these are not RGB photographs).
- :class:`Felzenszwalb` (``felzenszwalb``): the graph-based segmentation of Felzenszwalb and
  Huttenlocher 2004 (``skimage.segmentation.felzenszwalb``), **2D only** (scikit-image implements it
  for single- and multi-channel 2D images; a 3D input is refused). The sample is rescaled to [0, 1]
  over all channels here, as SLIC does, so ``scale`` has the meaning of the reference implementation
  on 0..255 images (scikit-image divides it by 255).

Shapes: masks bool N x *spatial, maps float N x *spatial in [0, 1], images float N x C x *spatial
(required). Runs per sample on the CPU; the result returns to the masks' device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import (
    RefinementError,
    Step,
    back,
    channels_last,
    check_choice,
    check_inputs,
    check_positive,
    check_unit,
    to_numpy,
)

POOLS = ("mask", "map")
DEFAULT_CUT = 0.5


def _resolve_pool(
    kind: str, pool: str, min_fraction: float | None, min_mean: float | None
) -> tuple[float | None, float | None]:
    """Fill the cut of the chosen pool with its default and refuse the cut of the other pool."""
    check_choice(kind, "pool", pool, POOLS)
    if pool == "mask":
        if min_mean is not None:
            raise RefinementError(f"{kind}: setting min_mean belongs to pool=map; with pool=mask use min_fraction")
        min_fraction = DEFAULT_CUT if min_fraction is None else min_fraction
        check_unit(kind, "min_fraction", min_fraction)
        return float(min_fraction), None
    if min_fraction is not None:
        raise RefinementError(f"{kind}: setting min_fraction belongs to pool=mask; with pool=map use min_mean")
    min_mean = DEFAULT_CUT if min_mean is None else min_mean
    check_unit(kind, "min_mean", min_mean)
    return None, float(min_mean)


def pool_superpixels(labels: np.ndarray, mask: np.ndarray, cam: np.ndarray, pool: str, cut: float) -> np.ndarray:
    """Foreground superpixels of one sample: ``labels`` int >= 0 (superpixel ids), ``mask`` bool and
    ``cam`` float of the same shape. pool 'mask': fraction of the superpixel inside the mask > cut;
    'map': mean CAM over the superpixel > cut. Returns bool of the labels' shape."""
    ids = labels.ravel()
    count = np.bincount(ids)
    values = mask.ravel().astype(np.float64) if pool == "mask" else cam.ravel().astype(np.float64)
    pooled = np.bincount(ids, weights=values, minlength=count.size) / np.maximum(count, 1)
    return (pooled > cut)[labels]


def _rescaled(image: np.ndarray) -> np.ndarray:
    """One sample (any shape) rescaled to [0, 1] over all its values; a constant sample becomes zeros."""
    low, high = float(image.min()), float(image.max())
    return (image - low) / (high - low) if high > low else np.zeros_like(image)


class _Pooling(Step):
    needs_images = True
    dims: tuple[int, ...] = (2, 3)

    def _segment(self, image: np.ndarray) -> np.ndarray:  # C x *spatial float64 -> int labels *spatial
        raise NotImplementedError

    def __call__(
        self,
        masks: torch.Tensor,
        maps: torch.Tensor,
        images: torch.Tensor | None = None,
        probabilities: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_inputs(self.kind, masks, maps, images, probabilities, need_images=True, dims=self.dims)
        pool, cut = self.pool, (self.min_fraction if self.pool == "mask" else self.min_mean)
        mask_array, map_array, image_array = to_numpy(masks), to_numpy(maps), to_numpy(images)
        out = np.empty(mask_array.shape, dtype=bool)
        for index in range(mask_array.shape[0]):
            if not mask_array[index].any():  # an empty sample stays empty (e.g. one a gate emptied)
                out[index] = False
                continue
            labels = self._segment(image_array[index])
            out[index] = pool_superpixels(labels, mask_array[index], map_array[index], pool, cut)
        return back(out, masks)


@dataclass(frozen=True)
class Slic(_Pooling):
    """SLIC superpixel pooling (Achanta et al. 2012), 2D and 3D; see the module docstring.

    n: about how many superpixels per sample (``n_segments``, >= 1); compactness: weight of position
    against intensity on the sample rescaled to [0, 1] (> 0; higher = squarer regions); sigma: Gaussian
    pre-smoothing in pixels (>= 0; scikit-image's default 0 - smoothing turns a step edge into a thin
    ring of its own); max_iter: k-means iterations (>= 1); pool / min_fraction / min_mean: see the module
    docstring. Defaults are a priori choices (about 160 pixels per superpixel on a 256 x 256 slice),
    not tuned on any data.
    """

    kind = "slic"
    n: int = 400
    compactness: float = 0.1
    sigma: float = 0.0
    max_iter: int = 10
    pool: str = "mask"
    min_fraction: float | None = None
    min_mean: float | None = None

    def __post_init__(self) -> None:
        check_positive(self.kind, "n", self.n, integer=True)
        check_positive(self.kind, "compactness", self.compactness)
        check_positive(self.kind, "sigma", self.sigma, zero=True)
        check_positive(self.kind, "max_iter", self.max_iter, integer=True)
        fraction, mean = _resolve_pool(self.kind, self.pool, self.min_fraction, self.min_mean)
        object.__setattr__(self, "n", int(self.n))
        object.__setattr__(self, "max_iter", int(self.max_iter))
        object.__setattr__(self, "compactness", float(self.compactness))
        object.__setattr__(self, "sigma", float(self.sigma))
        object.__setattr__(self, "min_fraction", fraction)
        object.__setattr__(self, "min_mean", mean)

    def _segment(self, image: np.ndarray) -> np.ndarray:
        from skimage.segmentation import slic

        data, channel_axis = channels_last(image)
        return slic(
            data,
            n_segments=self.n,
            compactness=self.compactness,
            sigma=self.sigma,
            max_num_iter=self.max_iter,
            channel_axis=channel_axis,
            convert2lab=False,
            enforce_connectivity=True,
            start_label=0,
        )


@dataclass(frozen=True)
class Felzenszwalb(_Pooling):
    """Felzenszwalb-Huttenlocher (2004) superpixel pooling, **2D only**; see the module docstring.

    scale: the observation level k (> 0; higher = larger regions), as in the reference code on 0..255
    images; sigma: Gaussian pre-smoothing in pixels (>= 0); min_size: smallest region in pixels (>= 1,
    merged away below it); pool / min_fraction / min_mean: see the module docstring. Defaults are the
    reference implementation's sigma and min_size with scale 100; a priori, not tuned on any data.
    """

    kind = "felzenszwalb"
    dims = (2,)
    scale: float = 100.0
    sigma: float = 0.8
    min_size: int = 20
    pool: str = "mask"
    min_fraction: float | None = None
    min_mean: float | None = None

    def __post_init__(self) -> None:
        check_positive(self.kind, "scale", self.scale)
        check_positive(self.kind, "sigma", self.sigma, zero=True)
        check_positive(self.kind, "min_size", self.min_size, integer=True)
        fraction, mean = _resolve_pool(self.kind, self.pool, self.min_fraction, self.min_mean)
        object.__setattr__(self, "scale", float(self.scale))
        object.__setattr__(self, "sigma", float(self.sigma))
        object.__setattr__(self, "min_size", int(self.min_size))
        object.__setattr__(self, "min_fraction", fraction)
        object.__setattr__(self, "min_mean", mean)

    def _segment(self, image: np.ndarray) -> np.ndarray:
        from skimage.segmentation import felzenszwalb

        data = np.moveaxis(_rescaled(image), 0, -1)  # H x W x C; scikit-image handles one or more channels
        return felzenszwalb(data, scale=self.scale, sigma=self.sigma, min_size=self.min_size, channel_axis=-1)
