"""From raw maps at a layer's resolution to maps on the input grid: ReLU, upsampling, normalisation.

All functions take and return maps N x H x W (2D) or N x D x H x W (3D) and stay on the maps'
device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F


def upsample(maps: torch.Tensor, size: Sequence[int], align_corners: bool = False) -> torch.Tensor:
    """Resize maps to ``size`` (H, W) or (D, H, W): bilinear in 2D, trilinear in 3D.

    ``align_corners=False`` (half-pixel centres, as OpenCV's ``resize``) unless asked otherwise.
    """
    size = tuple(int(s) for s in size)
    if tuple(maps.shape[1:]) == size:
        return maps
    mode = {2: "bilinear", 3: "trilinear"}[len(size)]
    return F.interpolate(maps.unsqueeze(1), size=size, mode=mode, align_corners=align_corners).squeeze(1)


def _per_sample(maps: torch.Tensor, reduce) -> torch.Tensor:
    values = reduce(maps.flatten(1), dim=1)
    return values.reshape((-1,) + (1,) * (maps.ndim - 1))


def min_max_normalize(maps: torch.Tensor) -> torch.Tensor:
    """Min-max normalise each sample's map to [0, 1]; a constant map becomes all zeros."""
    low = _per_sample(maps, torch.amin)
    span = _per_sample(maps, torch.amax) - low
    nonzero = span > 0
    return torch.where(nonzero, (maps - low) / torch.where(nonzero, span, torch.ones_like(span)), 0.0)


def scale_by_max(maps: torch.Tensor) -> torch.Tensor:
    """M / max M per sample (maps are non-negative after ReLU); an all-zero map stays zero."""
    peak = _per_sample(maps, torch.amax)
    positive = peak > 0
    return torch.where(positive, maps / torch.where(positive, peak, torch.ones_like(peak)), 0.0)


def fuse_layer_maps(maps: Sequence[torch.Tensor], size: Sequence[int], gamma: float = 2.0) -> torch.Tensor:
    """Layer-CAM fusion across layers (Syed et al. 2023 eq. 13, Jiang et al. 2021).

    ``maps`` are the per-layer Layer-CAM maps after ReLU, ordered shallow to deep. Each is
    resized to ``size``; the shallow ones are scaled as tanh(gamma * M / max M), the deepest as
    M / max M, and the fused map is their element-wise maximum.
    """
    if not maps:
        raise ValueError("Layer-CAM fusion needs at least one layer map")
    resized = [upsample(m, size) for m in maps]
    scaled = [torch.tanh(gamma * scale_by_max(m)) for m in resized[:-1]] + [scale_by_max(resized[-1])]
    return torch.stack(scaled).amax(dim=0)
