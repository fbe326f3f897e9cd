"""Training-time augmentation of slice batches (Syed et al. 2023), on the batch's device.

All transforms take and return N x C x H x W float tensors and draw their randomness from a
``torch.Generator`` so that a seeded run is reproducible:

* :class:`RandomAffine`: rotation up to 45 degrees, horizontal/vertical flips, shifts up to 20 %;
* :class:`ContrastStretch`: random linear stretch between random low/high percentiles;
* :class:`HistogramEqualize`: per image and channel, value -> its rank (exact equalisation);
* :class:`Clahe`: contrast-limited adaptive histogram equalisation (scikit-image, on the CPU).

Each is applied to a sample with probability ``p``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F


def _chosen(n: int, p: float, generator: torch.Generator, device) -> torch.Tensor:
    return (torch.rand(n, generator=generator) < p).to(device)


@dataclass
class RandomAffine:
    """Random rotation (|angle| <= ``max_degrees``), flips and shifts (|shift| <= ``max_shift`` of the size)."""

    max_degrees: float = 45.0
    max_shift: float = 0.2
    flips: bool = True
    p: float = 1.0

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        angle = (torch.rand(n, generator=generator) * 2 - 1) * math.radians(self.max_degrees)
        shift = (torch.rand(n, 2, generator=generator) * 2 - 1) * self.max_shift * 2  # grid units span 2
        flip = torch.ones(n, 2)
        if self.flips:
            flip = torch.where(torch.rand(n, 2, generator=generator) < 0.5, -1.0, 1.0)
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0] = torch.cos(angle) * flip[:, 0]
        theta[:, 0, 1] = -torch.sin(angle) * flip[:, 1]
        theta[:, 1, 0] = torch.sin(angle) * flip[:, 0]
        theta[:, 1, 1] = torch.cos(angle) * flip[:, 1]
        theta[:, :, 2] = shift
        keep = ~_chosen(n, self.p, generator, "cpu")
        theta[keep] = torch.tensor([[1.0, 0, 0], [0, 1.0, 0]])
        grid = F.affine_grid(theta.to(x.device, x.dtype), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


@dataclass
class ContrastStretch:
    """Stretch each image linearly so that its random [low, high] percentiles map to its 1st/99th."""

    max_low: float = 0.1
    min_high: float = 0.9
    p: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n = x.shape[0]
        flat = x.flatten(1)
        q_low = (torch.rand(n, generator=generator) * self.max_low).to(x.device, x.dtype)
        q_high = (self.min_high + torch.rand(n, generator=generator) * (1 - self.min_high)).to(x.device, x.dtype)
        sorted_values = flat.sort(dim=1).values
        last = flat.shape[1] - 1
        low = sorted_values.gather(1, (q_low * last).long()[:, None])
        high = sorted_values.gather(1, (q_high * last).long()[:, None])
        ref_low = sorted_values[:, int(0.01 * last)][:, None]
        ref_high = sorted_values[:, int(0.99 * last)][:, None]
        span = (high - low).clamp(min=1e-6)
        stretched = ((flat.clamp(low, high) - low) / span * (ref_high - ref_low) + ref_low).reshape(x.shape)
        chosen = _chosen(n, self.p, generator, x.device).reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(chosen, stretched, x)


@dataclass
class HistogramEqualize:
    """Replace each value by its rank within its image and channel, scaled back to the channel's range."""

    p: float = 0.2

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        n, c = x.shape[:2]
        flat = x.reshape(n * c, -1)
        ranks = flat.argsort(dim=1).argsort(dim=1).to(x.dtype) / max(1, flat.shape[1] - 1)
        low, high = flat.amin(1, keepdim=True), flat.amax(1, keepdim=True)
        equalised = (low + ranks * (high - low)).reshape(x.shape)
        chosen = _chosen(n, self.p, generator, x.device).reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(chosen, equalised, x)


@dataclass
class Clahe:
    """CLAHE per image and channel via scikit-image (values rescaled to [0, 1] and back)."""

    clip_limit: float = 0.01
    p: float = 0.2

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        from skimage import exposure

        chosen = _chosen(x.shape[0], self.p, generator, "cpu")
        if not bool(chosen.any()):
            return x
        out = x.clone()
        for n in torch.nonzero(chosen).squeeze(1).tolist():
            for c in range(x.shape[1]):
                plane = x[n, c].detach().cpu().double()
                low, high = float(plane.min()), float(plane.max())
                if high > low:
                    scaled = ((plane - low) / (high - low)).numpy()
                    result = exposure.equalize_adapthist(scaled, clip_limit=self.clip_limit)
                    out[n, c] = torch.from_numpy(result).to(x.device, x.dtype) * (high - low) + low
        return out


@dataclass
class Augment:
    """Apply ``transforms`` in order to a batch."""

    transforms: Sequence

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        for transform in self.transforms:
            x = transform(x, generator)
        return x


@dataclass
class RandomFlip:
    """Mirror a sample along its last axis (left-right) with probability ``p``; any number of spatial dims."""

    p: float = 0.5

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        chosen = _chosen(x.shape[0], self.p, generator, x.device).reshape(-1, *([1] * (x.ndim - 1)))
        return torch.where(chosen, x.flip(-1), x)


def volume_augmentation() -> Augment:
    """Augmentation of 3D batches (N x C x D x H x W): left-right flips, contrast stretching and histogram
    equalisation as in :func:`syed2023_augmentation` (its rotations, shifts and CLAHE are 2D only)."""
    return Augment([RandomFlip(0.5), ContrastStretch(p=0.3), HistogramEqualize(p=0.1)])


def default_augmentation(spatial_dims: int) -> Augment:
    """:func:`syed2023_augmentation` for 2D batches, :func:`volume_augmentation` for 3D."""
    return volume_augmentation() if spatial_dims == 3 else syed2023_augmentation()


def syed2023_augmentation() -> Augment:
    """The augmentation of Syed et al. 2023: rotation <= 45 degrees, flips, shifts <= 20 %, contrast
    stretching, histogram equalisation and CLAHE (the last three each on a share of the samples)."""
    return Augment([RandomAffine(45.0, 0.2, True, 1.0), ContrastStretch(p=0.3), HistogramEqualize(p=0.1), Clahe(p=0.1)])
