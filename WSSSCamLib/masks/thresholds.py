"""From CAM maps to binary masks: thresholds, threshold-free mean Dice, negative suppression.

Maps are float tensors N x *spatial (one 2D slice or 3D volume per sample, values in [0, 1], finite),
masks are bool tensors of the same shape. Everything is per sample and stays on the maps' device,
except the local adaptive threshold, which runs skimage on the CPU and moves the mask back.

Convention for every mode: foreground = map > cut (strict), as in Guan & Loew 2021 (B_t(B > t) = 1,
B_t(B <= t) = 0) and Syed et al. 2023 ("values > t_cam ... set to 1"). Hence an all-zero map gives an empty
mask in every mode. Cuts are compared in the maps' dtype (a fixed t = 0.3 is the float32 number
nearest 0.3 for float32 maps), identically in ``apply_threshold`` and ``fixed_threshold_counts``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..metrics.confusion import dice_from_counts
from ..metrics.threshold_sweep import CHUNK_ELEMENTS, as_thresholds, bucketize, count_above

THRESHOLD_GRID: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9)
MODES: tuple[str, ...] = ("fixed", "percentile", "mean", "median", "otsu", "adaptive")
OTSU_BINS = 256
DEFAULT_PERCENTILE = 95.0
DEFAULT_BLOCK_SIZE = 15
_ACCEPTED = (
    "'t=0.30' or '0.3' or 'fixed:0.3' (fixed t in [0, 1]), 'p95' or 'percentile:95' or 'percentile' "
    "(q in (0, 100), default 95), 'mean', 'median', 'otsu', 'adaptive' or 'adaptive15' or 'adaptive:21' "
    "(odd block size >= 3, default 15)"
)


def _format_number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


@dataclass(frozen=True)
class Threshold:
    """How to cut a map into a mask.

    mode: "fixed" (value = t in [0, 1], required), "percentile" (value = q in (0, 100), default 95:
    the per-sample q-th percentile, numpy's linear interpolation), "mean", "median" (per-sample
    statistics of the map, value None), "otsu" (per-sample Otsu on a 256-bin histogram over [0, 1]),
    "adaptive" (value = odd block size in pixels/voxels, default 15: skimage.filters.threshold_local,
    Gaussian, offset 0).
    """

    mode: str
    value: float | None = None

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"Threshold: unknown mode {self.mode!r}; accepted modes {MODES}")
        value = self.value
        if self.mode == "fixed":
            if value is None or not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"Threshold: fixed mode needs a value t in [0, 1], got {value!r}")
        elif self.mode == "percentile":
            value = DEFAULT_PERCENTILE if value is None else value
            if not 0.0 < float(value) < 100.0:
                raise ValueError(f"Threshold: percentile q must be in (0, 100), got {value!r}")
        elif self.mode == "adaptive":
            value = DEFAULT_BLOCK_SIZE if value is None else value
            if not float(value).is_integer() or int(value) < 3 or int(value) % 2 == 0:
                raise ValueError(f"Threshold: adaptive block size must be an odd integer >= 3, got {value!r}")
        elif value is not None:
            raise ValueError(f"Threshold: mode {self.mode!r} takes no value, got {value!r}")
        object.__setattr__(self, "value", None if value is None else float(value))

    @property
    def name(self) -> str:
        """Short name, the inverse of ``parse``: 't=0.30', 'p95', 'mean', 'median', 'otsu', 'adaptive15'."""
        if self.mode == "fixed":
            text = f"{self.value:.2f}"
            return f"t={text}" if float(text) == self.value else f"t={self.value!r}"
        if self.mode == "percentile":
            return f"p{_format_number(self.value)}"
        if self.mode == "adaptive":
            return f"adaptive{int(self.value)}"
        return self.mode

    @classmethod
    def parse(cls, text: str) -> Threshold:
        """Parse a name (see ``name``) or one of the accepted forms listed in the error message."""
        s = str(text).strip().lower()
        number = r"([0-9]*\.?[0-9]+(?:e[-+]?[0-9]+)?)"
        try:
            if s in ("mean", "median", "otsu"):
                return cls(s)
            if s in ("percentile", "adaptive"):
                return cls(s)
            match = re.fullmatch(rf"(?:t=|fixed:|fixed=)?{number}", s)
            if match:
                return cls("fixed", float(match.group(1)))
            match = re.fullmatch(rf"(?:p|percentile:|percentile=){number}", s)
            if match:
                return cls("percentile", float(match.group(1)))
            match = re.fullmatch(r"adaptive(?::|=)?([0-9]+)", s)
            if match:
                return cls("adaptive", float(match.group(1)))
        except ValueError as error:
            raise ValueError(
                f"Threshold.parse: {text!r} is not a valid threshold ({error}); accepted forms: {_ACCEPTED}"
            ) from None
        raise ValueError(f"Threshold.parse: cannot parse {text!r}; accepted forms: {_ACCEPTED}")


def _check_maps(maps: torch.Tensor, who: str) -> None:
    if not isinstance(maps, torch.Tensor) or not maps.is_floating_point():
        raise ValueError(
            f"{who}: maps must be a floating point tensor N x *spatial, got {getattr(maps, 'dtype', type(maps))}"
        )
    if maps.ndim < 2 or maps.shape[0] == 0 or maps[0].numel() == 0:
        raise ValueError(
            f"{who}: maps must be N x *spatial with N >= 1 and non-empty samples, got shape {tuple(maps.shape)}"
        )


def _percentile(flat: torch.Tensor, q: float) -> torch.Tensor:
    """Per-row q-th percentile of N x V, numpy's default 'linear' method (float64 N)."""
    count = flat.shape[1]
    position = q / 100.0 * (count - 1)
    low = math.floor(position)
    high = min(low + 1, count - 1)
    fraction = position - low
    a = flat.kthvalue(low + 1, dim=1).values.double()
    if fraction == 0.0:
        return a
    b = flat.kthvalue(high + 1, dim=1).values.double()
    return a + (b - a) * fraction


def _otsu(flat: torch.Tensor) -> torch.Tensor:
    """Per-row Otsu cut from a 256-bin histogram over [0, 1] (float64 N).

    Same criterion as skimage.filters.threshold_otsu given that histogram: maximise
    w1 w2 (mu1 - mu2)^2 over the split after bin k, cut = centre of bin k, first maximum on ties.
    Degenerate rows (no split separates anything, e.g. a constant map) get cut = the row maximum,
    hence an empty mask (skimage likewise returns the value of a constant image).
    """
    n = flat.shape[0]
    bins = (flat.double() * OTSU_BINS).floor().clamp(0, OTSU_BINS - 1).long()
    bins = bins + OTSU_BINS * torch.arange(n, device=flat.device)[:, None]
    hist = torch.bincount(bins.reshape(-1), minlength=n * OTSU_BINS).view(n, OTSU_BINS).double()
    centres = (torch.arange(OTSU_BINS, device=flat.device, dtype=torch.float64) + 0.5) / OTSU_BINS
    weight1 = hist.cumsum(1)
    weight2 = hist.flip(1).cumsum(1).flip(1)
    moment = hist * centres
    mean1 = moment.cumsum(1) / weight1.clamp(min=1)
    mean2 = moment.flip(1).cumsum(1).flip(1) / weight2.clamp(min=1)
    variance = weight1[:, :-1] * weight2[:, 1:] * (mean1[:, :-1] - mean2[:, 1:]) ** 2
    best = variance.max(dim=1).values
    first = (variance == best[:, None]).int().argmax(dim=1)  # first maximum on ties, explicitly
    cut = centres[first]
    return torch.where(best > 0, cut, flat.max(dim=1).values.double())


def threshold_cuts(maps: torch.Tensor, threshold: Threshold) -> torch.Tensor:
    """Per-sample cut values of a global threshold mode: N, in the maps' dtype and device.

    fixed: t for every sample; percentile: q-th percentile of the sample's values (numpy 'linear');
    mean / median: the sample's mean / median (median = 50th percentile, numpy's convention for an
    even count); otsu: see ``_otsu``. ValueError for "adaptive" (a per-voxel threshold, no single cut).
    """
    _check_maps(maps, "threshold_cuts")
    n = maps.shape[0]
    flat = maps.reshape(n, -1)
    mode = threshold.mode
    if mode == "fixed":
        return torch.full((n,), threshold.value, dtype=maps.dtype, device=maps.device)
    if mode == "percentile":
        cuts = _percentile(flat, threshold.value)
    elif mode == "median":
        cuts = _percentile(flat, 50.0)
    elif mode == "mean":
        cuts = flat.double().mean(dim=1)
    elif mode == "otsu":
        cuts = _otsu(flat)
    else:
        raise ValueError(f"threshold_cuts: mode {mode!r} has no per-sample cut (it is local); use apply_threshold")
    return cuts.to(maps.dtype)


def _adaptive(maps: torch.Tensor, block_size: int) -> torch.Tensor:
    from skimage.filters import threshold_local

    if maps.ndim not in (3, 4):
        raise ValueError(
            f"apply_threshold: adaptive mode needs N x H x W or N x D x H x W maps, got shape {tuple(maps.shape)}"
        )
    array = maps.detach().double().cpu().numpy()
    out = np.empty(array.shape, dtype=bool)
    for index, sample in enumerate(array):
        out[index] = sample > threshold_local(sample, block_size, method="gaussian", offset=0)
    return torch.from_numpy(out).to(maps.device)


def apply_threshold(maps: torch.Tensor, threshold: Threshold) -> torch.Tensor:
    """maps N x *spatial float in [0, 1] -> bool mask of the same shape: map > cut (strict), per sample.

    Global modes use ``threshold_cuts``; "adaptive" compares every voxel with skimage's local
    Gaussian-weighted mean over a block of ``value`` voxels (2D per slice or 3D per volume).
    """
    _check_maps(maps, "apply_threshold")
    if threshold.mode == "adaptive":
        return _adaptive(maps, int(threshold.value))
    cuts = threshold_cuts(maps, threshold)
    return maps > cuts.view(-1, *([1] * (maps.ndim - 1)))


def fixed_threshold_counts(
    maps: torch.Tensor, reference: torch.Tensor, thresholds: Sequence[float] | torch.Tensor
) -> torch.Tensor:
    """Confusion counts of mask = map > t for every t: int64 T x N x 4 (tp, fp, fn, tn).

    maps N x *spatial float, reference bool of the same shape, thresholds T floats (any order,
    repeats allowed). Exactly equal to ``confusion_counts(apply_threshold(maps, Threshold('fixed', t)),
    reference)`` for each t, but computed in O(voxels log T) from per-sample bucket histograms and
    reverse cumulative sums, never building a T x N x voxels tensor.
    """
    _check_maps(maps, "fixed_threshold_counts")
    if reference.shape != maps.shape:
        raise ValueError(
            f"fixed_threshold_counts: maps shape {tuple(maps.shape)} and reference shape {tuple(reference.shape)} differ"
        )
    values = as_thresholds(thresholds, "fixed_threshold_counts")
    n = maps.shape[0]
    flat = maps.reshape(n, -1)
    ref = reference.reshape(n, -1).bool()
    voxels = flat.shape[1]
    step = max(1, CHUNK_ELEMENTS // voxels)
    parts = []
    for start in range(0, n, step):
        chunk, chunk_ref = flat[start : start + step], ref[start : start + step]
        ids, inverse, buckets = bucketize(chunk, values)
        above_all = count_above(ids, inverse, buckets)  # m x T
        tp = count_above(ids, inverse, buckets, chunk_ref)
        actual = chunk_ref.sum(1)[:, None]  # int64 (sum of bool)
        fp = above_all - tp
        fn = actual - tp
        tn = voxels - tp - fp - fn
        parts.append(torch.stack([tp, fp, fn, tn], dim=-1).transpose(0, 1))  # T x m x 4
    return torch.cat(parts, dim=1).to(torch.int64)


def mean_dice_over_thresholds(maps: torch.Tensor, reference: torch.Tensor, steps: int = 256) -> torch.Tensor:
    """Threshold-free score of Guan & Loew 2021 eq. 9: mean-Dice(A, B) = 1/256 sum_{t=0}^{255} Dice(A, B_t).

    Guan & Loew 2021 binarises a [0, 255] grey CAM B with B_t = (B > t) for the integers t = 0..255. On our
    [0, 1] maps that is mask = map > k / (steps - 1) for k = 0, ..., steps - 1 (steps = 256 ->
    thresholds 0, 1/255, ..., 1); the last threshold (1.0) gives an empty mask, as t = 255 does in the
    paper. Empty convention: a threshold at which mask and reference are both empty scores Dice 1
    (so a sample with an empty reference scores the fraction of thresholds with an empty mask).
    Returns float64 N.
    """
    if steps < 2:
        raise ValueError(f"mean_dice_over_thresholds: steps must be >= 2, got {steps}")
    thresholds = torch.arange(steps, dtype=torch.float64) / (steps - 1)
    counts = fixed_threshold_counts(maps, reference, thresholds)  # steps x N x 4
    return dice_from_counts(counts, empty=1.0).mean(dim=0)


POSITIVE_PROBABILITY = 0.5
"""A slice (or volume) counts as positive when the classifier's target-class probability is above this."""


def classifier_positive(probabilities: torch.Tensor) -> torch.Tensor:
    """The one "empty when the classifier says negative" rule: positive where the target-class
    probability is strictly above :data:`POSITIVE_PROBABILITY` (0.5). probabilities: N float -> N bool."""
    return torch.as_tensor(probabilities) > POSITIVE_PROBABILITY


def suppress_negatives(masks: torch.Tensor, positive: torch.Tensor | Sequence[bool]) -> torch.Tensor:
    """Empty the masks of samples the classifier calls negative: masks N x *spatial, positive N bool.

    Returns a bool tensor of the masks' shape where sample n is all False unless positive[n].
    """
    flags = torch.as_tensor(positive, device=masks.device).reshape(-1).bool()
    if masks.ndim < 1 or flags.numel() != masks.shape[0]:
        raise ValueError(f"suppress_negatives: {flags.numel()} positive flags for masks of shape {tuple(masks.shape)}")
    return masks.bool() & flags.view(-1, *([1] * (masks.ndim - 1)))
