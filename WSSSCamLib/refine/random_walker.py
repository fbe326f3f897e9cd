"""Random walker refinement (Grady 2006, ``skimage.segmentation.random_walker``), 2D and 3D.

Seeds come from the confident ends of the CAM, the rest is decided by the image:

- foreground seeds: inside the incoming mask where map >= ``high`` (default 0.8);
- background seeds: outside the incoming mask where map <= ``low`` (default 0.2) (both cuts compared in
  the maps' dtype, as :mod:`WSSSCamLib.masks` does);
- every other pixel is unlabelled; each gets the label whose random walk, on the image graph with
  edge weights exp(-beta * |grad image|^2 / (10 std(image))) (scikit-image's normalisation; every
  channel of the image counts), reaches it first with the higher probability. The result is the set
  of pixels labelled foreground.

With a threshold mask (map > t, low <= t < high) the seeds are exactly map >= high and map <= low;
intersecting with the incoming mask keeps the step composable (a pixel a previous step removed is
never a foreground seed, one it added never a background seed).

Fallbacks, per sample: no foreground seed (the CAM is nowhere confident inside the mask, e.g. an
empty mask) -> an empty mask; no background seed (the whole sample outside the mask is above ``low``)
or a constant image (no edges to follow) -> the incoming mask unchanged; every pixel a seed -> the
foreground seeds.

Shapes: masks bool N x *spatial, maps float N x *spatial in [0, 1], images float N x C x *spatial
(required). Pixels are taken as isotropic. Runs per sample on the CPU (conjugate gradient with a
Jacobi preconditioner, ``mode='cg_j'``); the result returns to the masks' device.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from .base import (
    Step,
    back,
    channels_last,
    check_inputs,
    check_positive,
    check_setting,
    check_unit,
    in_dtype_of,
    to_numpy,
)

BACKGROUND, FOREGROUND = 1, 2


@dataclass(frozen=True)
class RandomWalker(Step):
    """Random walker seeded from confident CAM foreground and background; see the module docstring.

    low, high: seed cuts on the map (0 <= low < high <= 1); beta: edge sensitivity (> 0, scikit-image's
    default 130); tol: conjugate-gradient tolerance (> 0). Defaults are a priori, not tuned on any data.
    """

    kind = "random_walker"
    needs_images = True
    low: float = 0.2
    high: float = 0.8
    beta: float = 130.0
    tol: float = 1e-3

    def __post_init__(self) -> None:
        check_unit(self.kind, "low", self.low)
        check_unit(self.kind, "high", self.high)
        check_setting(self.low < self.high, self.kind, "low", f"must be below high={self.high}", self.low)
        check_positive(self.kind, "beta", self.beta)
        check_positive(self.kind, "tol", self.tol)
        for name in ("low", "high", "beta", "tol"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def seeds(
        self, mask: np.ndarray, cam: np.ndarray, low: float | None = None, high: float | None = None
    ) -> np.ndarray:
        """int32 labels of one sample: 2 = foreground seed, 1 = background seed, 0 = unlabelled
        (``low``/``high``: the cuts as compared, default the settings)."""
        low, high = self.low if low is None else low, self.high if high is None else high
        labels = np.zeros(mask.shape, dtype=np.int32)
        labels[~mask & (cam <= low)] = BACKGROUND
        labels[mask & (cam >= high)] = FOREGROUND
        return labels

    def _one(self, mask: np.ndarray, cam: np.ndarray, image: np.ndarray, low: float, high: float) -> np.ndarray:
        from skimage.segmentation import random_walker

        labels = self.seeds(mask, cam, low, high)
        if not (labels == FOREGROUND).any():
            return np.zeros(mask.shape, dtype=bool)
        if not (labels == BACKGROUND).any() or float(image.std()) == 0.0:
            return mask.copy()
        if (labels != 0).all():  # every pixel is a seed: nothing to decide
            return labels == FOREGROUND
        data, channel_axis = channels_last(image)
        with warnings.catch_warnings():
            # "probability range outside [0, 1] given prob_tol": a numerical note of the iterative solver
            warnings.filterwarnings("ignore", message=".*probability range.*")
            result = random_walker(data, labels, beta=self.beta, mode="cg_j", tol=self.tol, channel_axis=channel_axis)
        return result == FOREGROUND

    def __call__(
        self,
        masks: torch.Tensor,
        maps: torch.Tensor,
        images: torch.Tensor | None = None,
        probabilities: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_inputs(self.kind, masks, maps, images, probabilities, need_images=True)
        low, high = in_dtype_of(self.low, maps), in_dtype_of(self.high, maps)
        mask_array, map_array, image_array = to_numpy(masks), to_numpy(maps), to_numpy(images)
        out = np.empty(mask_array.shape, dtype=bool)
        for index in range(mask_array.shape[0]):
            out[index] = self._one(mask_array[index], map_array[index], image_array[index], low, high)
        return back(out, masks)
