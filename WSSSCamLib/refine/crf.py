"""Fully connected (dense) CRF refinement (Krähenbühl and Koltun 2011) with pydensecrf2, 2D and 3D.

Two labels (background, foreground) per pixel. The energy is
E(x) = sum_i psi_u(x_i) + sum_{i<j} mu(x_i, x_j) k(f_i, f_j), minimised approximately by ``iterations``
steps of mean-field inference on the permutohedral lattice (the paper's algorithm, Philipp
Krähenbühl's C++ code wrapped by pydensecrf, with its default diagonal kernels and symmetric
normalisation; Potts compatibility mu = [x_i != x_j] times ``compat``):

- unary psi_u = -log P: ``unary=map`` (default): P(foreground) = the CAM value clipped to
  [1e-5, 1 - 1e-5] (the DESIGN's "CAM as unary term"; the incoming mask only decides whether the
  sample is refined at all: a sample whose incoming mask is empty stays empty, so that a gate or
  any earlier step that emptied it is not undone);
  ``unary=mask``: P(label of the incoming mask) = ``confidence`` (pydensecrf's unary_from_labels
  convention), so the step refines whatever a previous step produced;
- smoothness kernel: compat_gaussian * exp(-|p_i - p_j|^2 / (2 sxy_gaussian^2)), positions p in pixels;
- appearance kernel: compat_bilateral * exp(-|p_i - p_j|^2 / (2 sxy_bilateral^2) - |I_i - I_j|^2 / (2 schan^2)),
  I = all C channels of the normalised image (schan in the image's units, e.g. z-score units).

The result is foreground where the foreground marginal exceeds the background one (ties background).
With both ``compat`` at 0 (no pairwise term) and ``unary=map`` it is map > 0.5 (compared in float32). 2D slices and
3D volumes (positions in voxels, taken as isotropic); the kernels of pydensecrf.utils work in any
dimension.

pydensecrf2 is an optional dependency (extra ``refine`` of pyproject.toml): it is built from its
source distribution (needs a C++ compiler) and is imported only when a CRF runs; without it the
step raises :class:`~WSSSCamLib.refine.base.MissingDependencyError` saying how to install it.

Shapes: masks bool N x *spatial, maps float N x *spatial in [0, 1], images float N x C x *spatial
(required). Runs per sample on the CPU; the result returns to the masks' device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .base import (
    MissingDependencyError,
    Step,
    back,
    check_choice,
    check_inputs,
    check_positive,
    check_setting,
    to_numpy,
)

UNARIES = ("map", "mask")
CLIP = 1e-5
REQUIREMENT = "pydensecrf2==1.1"


def _densecrf():
    """The pydensecrf modules, or a MissingDependencyError that says how to install them."""
    try:
        from pydensecrf import densecrf, utils
    except ImportError as error:
        raise MissingDependencyError(
            f"crf: the dense CRF needs the optional package {REQUIREMENT} (not installed: {error}); install it "
            f"with pip install 'wssscam[refine]' or pip install {REQUIREMENT} (it builds from source and needs "
            f"a C++ compiler)"
        ) from None
    return densecrf, utils


@dataclass(frozen=True)
class DenseCrf(Step):
    """Dense CRF with the CAM (or the mask) as unary and Gaussian + bilateral pairwise terms on the image.

    iterations: mean-field steps (>= 1); sxy_gaussian, sxy_bilateral: spatial widths in pixels (> 0);
    schan: intensity width in image units (> 0); compat_gaussian, compat_bilateral: kernel weights (>= 0);
    unary: map | mask; confidence: P(mask label) for unary=mask (in (0.5, 1), default 0.7; refused with
    unary=map). See the module docstring. Defaults: the usual smoothness kernel (3 px, weight 3) and an
    appearance kernel for z-scored MRI (10 px, 0.3 standard deviations, weight 5) checked only on the
    synthetic hand cases of the tests (a unit step edge in 2D and 3D), not tuned on any real data.
    """

    kind = "crf"
    needs_images = True
    iterations: int = 5
    sxy_gaussian: float = 3.0
    compat_gaussian: float = 3.0
    sxy_bilateral: float = 10.0
    schan: float = 0.3
    compat_bilateral: float = 5.0
    unary: str = "map"
    confidence: float | None = None

    def __post_init__(self) -> None:
        check_positive(self.kind, "iterations", self.iterations, integer=True)
        for name in ("sxy_gaussian", "sxy_bilateral", "schan"):
            check_positive(self.kind, name, getattr(self, name))
        for name in ("compat_gaussian", "compat_bilateral"):
            check_positive(self.kind, name, getattr(self, name), zero=True)
        check_choice(self.kind, "unary", self.unary, UNARIES)
        if self.unary == "mask":
            confidence = 0.7 if self.confidence is None else self.confidence
            check_setting(
                isinstance(confidence, (int, float)) and 0.5 < confidence < 1.0,
                self.kind,
                "confidence",
                "must be in (0.5, 1)",
                confidence,
            )
            object.__setattr__(self, "confidence", float(confidence))
        else:
            check_setting(
                self.confidence is None, self.kind, "confidence", "only applies to unary=mask", self.confidence
            )
        object.__setattr__(self, "iterations", int(self.iterations))
        for name in ("sxy_gaussian", "sxy_bilateral", "schan", "compat_gaussian", "compat_bilateral"):
            object.__setattr__(self, name, float(getattr(self, name)))

    def foreground_probability(self, mask: np.ndarray, cam: np.ndarray) -> np.ndarray:
        """P(foreground) of one sample for the unary term (float32, the sample's shape)."""
        if self.unary == "map":
            return np.clip(cam, CLIP, 1.0 - CLIP).astype(np.float32)
        return np.where(mask, self.confidence, 1.0 - self.confidence).astype(np.float32)

    def _one(self, densecrf, utils, mask: np.ndarray, cam: np.ndarray, image: np.ndarray) -> np.ndarray:
        shape = mask.shape
        foreground = self.foreground_probability(mask, cam)
        probabilities = np.stack([1.0 - foreground, foreground]).reshape(2, -1)
        crf = densecrf.DenseCRF(int(foreground.size), 2)
        crf.setUnaryEnergy(np.ascontiguousarray(-np.log(probabilities), dtype=np.float32))
        if self.compat_gaussian > 0:
            features = utils.create_pairwise_gaussian((self.sxy_gaussian,) * len(shape), shape)
            crf.addPairwiseEnergy(np.ascontiguousarray(features, dtype=np.float32), compat=self.compat_gaussian)
        if self.compat_bilateral > 0:
            spatial, intensity = (self.sxy_bilateral,) * len(shape), (self.schan,) * image.shape[0]
            features = utils.create_pairwise_bilateral(spatial, intensity, image.astype(np.float32), chdim=0)
            crf.addPairwiseEnergy(np.ascontiguousarray(features, dtype=np.float32), compat=self.compat_bilateral)
        marginals = np.asarray(crf.inference(self.iterations)).reshape(2, *shape)
        return marginals[1] > marginals[0]

    def __call__(
        self,
        masks: torch.Tensor,
        maps: torch.Tensor,
        images: torch.Tensor | None = None,
        probabilities: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_inputs(self.kind, masks, maps, images, probabilities, need_images=True)
        densecrf, utils = _densecrf()
        mask_array, map_array, image_array = to_numpy(masks), to_numpy(maps), to_numpy(images)
        out = np.empty(mask_array.shape, dtype=bool)
        for index in range(mask_array.shape[0]):
            if not mask_array[index].any():  # an empty sample stays empty (e.g. one a gate emptied)
                out[index] = False
                continue
            out[index] = self._one(densecrf, utils, mask_array[index], map_array[index], image_array[index])
        return back(out, masks)
