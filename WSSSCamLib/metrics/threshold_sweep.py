"""The threshold-sweep counting kernel: how many voxels of each sample lie above each of T thresholds.

Used by the fixed-threshold confusion counts and the ensemble grid (``WSSSCamLib.masks``) and by the
agreement at thresholds (``WSSSCamLib.metrics.agreement``). Maps are float tensors N x V (one row per
sample, V voxels); "above t" is the strict ``value > t`` of ``apply_threshold``, with t cast to the
maps' dtype first. Instead of building a T x N x V mask tensor, every value is bucketed once against
the sorted unique thresholds; per-sample histograms of the bucket ids and their reverse cumulative
sums then give every threshold's count in O(V log T).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

CHUNK_ELEMENTS = 1 << 24
"""Elements handled at once by the counting kernels (bounds the int64 bucket-index temporaries)."""


def as_thresholds(thresholds: Sequence[float] | torch.Tensor, who: str) -> torch.Tensor:
    """Thresholds as a flat float64 CPU tensor of T >= 1 finite values; ValueError naming ``who`` otherwise."""
    values = torch.as_tensor(thresholds, dtype=torch.float64).reshape(-1).cpu()
    if values.numel() == 0:
        raise ValueError(f"{who}: thresholds is empty")
    if not torch.isfinite(values).all():
        raise ValueError(f"{who}: thresholds must be finite, got {values.tolist()}")
    return values


def bucketize(flat: torch.Tensor, thresholds: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, int]:
    """Bucket ids of N x V map values against the thresholds cast to the maps' dtype.

    Returns (ids N x V int64, inverse T, buckets U + 1) where ids = #{unique thresholds < value},
    so value > thresholds[t] exactly when ids > inverse[t]. NaN counts as below every threshold.
    """
    cast = thresholds.to(device=flat.device, dtype=flat.dtype)
    unique, inverse = torch.unique(cast, sorted=True, return_inverse=True)
    values = torch.nan_to_num(flat, nan=-math.inf)
    return torch.bucketize(values, unique, right=False), inverse, unique.numel() + 1


def count_above(
    ids: torch.Tensor, inverse: torch.Tensor, buckets: int, keep: torch.Tensor | None = None
) -> torch.Tensor:
    """Per sample and threshold, the voxels above the threshold: int64 m x T.

    ``ids``: m x V bucket ids from :func:`bucketize` (with its ``inverse`` and ``buckets``); ``keep``:
    optional m x V bool, counting only those voxels. A voxel is above threshold t when ids > inverse[t]:
    a per-sample histogram of the ids and its reverse cumulative sum (values > unique[j] fill buckets
    j + 1..U).
    """
    m = ids.shape[0]
    offset = ids + buckets * torch.arange(m, device=ids.device)[:, None]
    hist = torch.bincount(offset[keep] if keep is not None else offset.reshape(-1), minlength=m * buckets).view(
        m, buckets
    )
    return hist.flip(1).cumsum(1).flip(1)[:, 1:][:, inverse]
