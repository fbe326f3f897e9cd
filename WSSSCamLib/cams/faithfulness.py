"""How faithfully CAMs explain their classifier, without reference masks: deletion and insertion AUC
(Petsiuk et al. 2018, RISE), average drop and increase in confidence (Chattopadhay et al. 2018,
Grad-CAM++).

Conventions: ``images`` N x C x *spatial (2D: H x W, 3D: D x H x W) as the network takes them (here
normalised intensities), ``maps`` N x *spatial in [0, 1] on the same grid (the engine's maps at the
input size), ``targets`` N class indices; "confidence" is the softmax probability of the target
class. Everything runs on the images' device, in inference mode, in batches of at most ``chunk``
perturbed inputs, so N images x S steps cost about N x (S + 1) forward passes.

A pixel (voxel) is perturbed in all channels at once. ``baseline`` is what a removed pixel becomes:
``"zero"`` (0, the mean of a z-scored image, and what pytorch-grad-cam multiplies towards),
``"minimum"`` (each image channel's minimum, the darkest value, as the filtered retraining uses) or
``"blur"`` (the same pixel of the image blurred as insertion starts from: Gaussian, sigma 5 pixels,
kernel 11; removes detail but keeps the intensity level).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

BASELINES = ("zero", "minimum", "blur")
BLUR_SIGMA, BLUR_SIZE = 5.0, 11
"""RISE's blur (Petsiuk et al. 2018): Gaussian sigma in pixels and kernel size, for insertion and the ``blur`` baseline."""


def _check(images: torch.Tensor, maps: torch.Tensor, targets, who: str) -> torch.Tensor:
    """Targets as an N int64 tensor on the images' device; ValueError naming ``who`` for bad shapes."""
    if not isinstance(images, torch.Tensor) or images.ndim not in (4, 5) or images.shape[0] == 0:
        raise ValueError(
            f"{who}: images must be a non-empty N x C x H x W or N x C x D x H x W tensor, got {getattr(images, 'shape', type(images))}"
        )
    if not isinstance(maps, torch.Tensor) or tuple(maps.shape) != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"{who}: maps must be N x *spatial {(images.shape[0], *images.shape[2:])}, got {getattr(maps, 'shape', type(maps))}"
        )
    if not torch.isfinite(images).all() or not torch.isfinite(maps).all():
        raise ValueError(f"{who}: images and maps must be finite")
    targets = torch.as_tensor(targets, device=images.device)
    targets = targets.expand(images.shape[0]) if targets.ndim == 0 else targets
    if targets.dtype.is_floating_point or targets.shape != (images.shape[0],):
        raise ValueError(f"{who}: targets must be one integer class per image, got {targets.tolist()}")
    return targets.long()


def _baseline(images: torch.Tensor, baseline: str) -> torch.Tensor:
    """The removed pixels' values: N x C x 1... per image and channel (``zero``, ``minimum``), or the
    blurred image N x C x *spatial (``blur``); broadcasts against ``images``."""
    if baseline not in BASELINES:
        raise ValueError(f"baseline: {baseline!r} is not one of {', '.join(BASELINES)}")
    if baseline == "blur":
        return _gaussian_blur(images, BLUR_SIGMA, BLUR_SIZE)
    if baseline == "zero":
        return torch.zeros((*images.shape[:2], *([1] * (images.ndim - 2))), dtype=images.dtype, device=images.device)
    return images.flatten(2).min(dim=2).values.view(*images.shape[:2], *([1] * (images.ndim - 2)))


@torch.inference_mode()
def confidences(model: nn.Module, images: torch.Tensor, targets: torch.Tensor, chunk: int = 64) -> torch.Tensor:
    """Softmax probability of ``targets`` (M) for M inputs, in chunks: float32 M."""
    out = []
    for start in range(0, images.shape[0], chunk):
        logits = model(images[start : start + chunk]).float()
        out.append(torch.softmax(logits, dim=1).gather(1, targets[start : start + chunk, None])[:, 0])
    return torch.cat(out)


@dataclass
class ConfidenceChange:
    """Per image: ``full`` = confidence on the image, ``explained`` = on the image kept where the map
    is high (``baseline + map * (image - baseline)``), ``drop`` = max(0, full - explained) / full
    (Chattopadhay et al. 2018, eq. for Average Drop, per image, as a fraction), ``increase`` =
    explained > full. Averages: ``average_drop`` (x 100 gives the paper's %) and ``increase_rate``."""

    full: torch.Tensor
    explained: torch.Tensor

    @property
    def drop(self) -> torch.Tensor:
        return (self.full - self.explained).clamp(min=0) / self.full.clamp(min=torch.finfo(self.full.dtype).tiny)

    @property
    def increase(self) -> torch.Tensor:
        return self.explained > self.full

    @property
    def average_drop(self) -> float:
        return float(self.drop.mean())

    @property
    def increase_rate(self) -> float:
        return float(self.increase.float().mean())


def confidence_change(
    model: nn.Module, images: torch.Tensor, maps: torch.Tensor, targets, baseline: str = "zero", chunk: int = 64
) -> ConfidenceChange:
    """Average drop / increase in confidence of the explanation ``map * image`` (see :class:`ConfidenceChange`)."""
    targets = _check(images, maps, targets, "confidence_change")
    base = _baseline(images, baseline)
    explained = base + maps[:, None].to(images.dtype) * (images - base)
    both = confidences(model, torch.cat([images, explained]), torch.cat([targets, targets]), chunk)
    return ConfidenceChange(both[: images.shape[0]], both[images.shape[0] :])


def _gaussian_blur(images: torch.Tensor, sigma: float, size: int) -> torch.Tensor:
    """Separable Gaussian blur over every spatial axis (2D or 3D), edges replicated; same shape."""
    radius = size // 2
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float64, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = (kernel / kernel.sum()).to(images.dtype)
    spatial = images.ndim - 2
    channels = images.shape[1]
    out = images
    convolve = F.conv2d if spatial == 2 else F.conv3d
    for axis in range(spatial):
        shape = [1] * spatial
        shape[axis] = kernel.numel()
        weight = kernel.view(1, 1, *shape).repeat(channels, 1, *([1] * spatial))
        padding = [0, 0] * spatial
        padding[2 * (spatial - 1 - axis)] = padding[2 * (spatial - 1 - axis) + 1] = radius
        out = convolve(F.pad(out, padding, mode="replicate"), weight, groups=channels)
    return out


def _ranks(maps: torch.Tensor) -> torch.Tensor:
    """N x P rank of every pixel by decreasing map value (0 = most salient; ties by pixel index)."""
    flat = maps.flatten(1)
    order = torch.argsort(-flat, dim=1, stable=True)
    ranks = torch.empty_like(order)
    ranks.scatter_(1, order, torch.arange(flat.shape[1], device=maps.device).expand_as(order))
    return ranks


@dataclass
class PerturbationCurves:
    """``curves`` N x (S + 1): target confidence after each step (step 0 = nothing changed yet);
    ``fractions`` S + 1: share of the pixels changed at each step; ``auc`` N: trapezoidal area under
    the curve over the fractions (in [0, 1])."""

    curves: torch.Tensor
    fractions: torch.Tensor

    @property
    def auc(self) -> torch.Tensor:
        return torch.trapezoid(self.curves, self.fractions.to(self.curves), dim=1)


def perturbation_curves(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets,
    mode: str = "deletion",
    steps: int = 50,
    baseline: str = "zero",
    blur_sigma: float = BLUR_SIGMA,
    blur_size: int = BLUR_SIZE,
    chunk: int = 64,
) -> PerturbationCurves:
    """Deletion or insertion curves (Petsiuk et al. 2018).

    Pixels are taken in order of decreasing map value; at step k of S the first ceil(k P / S) of
    the P pixels are changed. ``deletion``: they become the baseline (start: the image, end: all
    baseline); a faithful map makes the confidence fall fast (low AUC is good). ``insertion``: the
    image starts blurred (Gaussian, ``blur_sigma`` pixels, ``blur_size`` kernel, as in RISE) and the
    pixels are put back (end: the image); a faithful map makes it rise fast (high AUC is good).
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode: {mode!r} is not 'deletion' or 'insertion'")
    if steps < 1:
        raise ValueError(f"steps: must be >= 1, got {steps}")
    targets = _check(images, maps, targets, "perturbation_curves")
    n, pixels = images.shape[0], maps[0].numel()
    ranks = _ranks(maps).view(n, 1, *images.shape[2:])
    counts = torch.tensor([math.ceil(k * pixels / steps) for k in range(steps + 1)], device=images.device)
    start = _baseline(images, baseline) if mode == "deletion" else _gaussian_blur(images, blur_sigma, blur_size)
    # perturbed input j (image j // (S + 1), step j % (S + 1)), built chunk by chunk on the device
    total = n * (steps + 1)
    scores = torch.empty(total, device=images.device)
    per_chunk = max(1, chunk)
    for first in range(0, total, per_chunk):
        flat = torch.arange(first, min(first + per_chunk, total), device=images.device)
        index, step = flat // (steps + 1), flat % (steps + 1)
        changed = ranks[index] < counts[step].view(-1, *([1] * (images.ndim - 1)))
        if mode == "deletion":
            batch = torch.where(changed, start.expand_as(images)[index], images[index])
        else:
            batch = torch.where(changed, images[index], start[index])
        scores[first : first + len(flat)] = confidences(model, batch, targets[index], chunk=per_chunk)
    return PerturbationCurves(scores.view(n, steps + 1), counts.double() / pixels)


def faithfulness_scores(
    model: nn.Module,
    images: torch.Tensor,
    maps: torch.Tensor,
    targets,
    steps: int = 50,
    baseline: str = "zero",
    chunk: int = 64,
    explanation_baseline: str = "zero",
) -> dict[str, torch.Tensor]:
    """Per image: ``confidence`` (target-class softmax probability of the unchanged image),
    ``deletion_auc``, ``insertion_auc``, ``drop`` (fraction), ``increase`` (0/1) as float N tensors.
    ``baseline``: the deletion's removed pixels; ``explanation_baseline``: that of the average drop /
    increase's explanation (``zero``: the paper's x * L)."""
    change = confidence_change(model, images, maps, targets, explanation_baseline, chunk)
    deletion = perturbation_curves(model, images, maps, targets, "deletion", steps, baseline, chunk=chunk)
    insertion = perturbation_curves(model, images, maps, targets, "insertion", steps, baseline, chunk=chunk)
    return {
        "confidence": change.full.float(),
        "deletion_auc": deletion.auc.float(),
        "insertion_auc": insertion.auc.float(),
        "drop": change.drop.float(),
        "increase": change.increase.float(),
    }


__all__: Sequence[str] = (
    "BASELINES",
    "BLUR_SIGMA",
    "BLUR_SIZE",
    "ConfidenceChange",
    "PerturbationCurves",
    "confidence_change",
    "confidences",
    "faithfulness_scores",
    "perturbation_curves",
)
