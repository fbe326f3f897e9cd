"""Where a CAM points, measured against reference masks: the pointing game (Zhang et al. 2016,
"Top-down neural attention by excitation backprop") and the energy-based pointing game (Wang et al.
2020, Score-CAM).

Conventions: ``maps`` float N x *spatial (2D slices or 3D volumes), ``reference`` bool of the same
shape; samples with an empty reference have no object to point at and score NaN (leave them out of
means with ``nanmean``). Everything stays on the maps' device.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _check(maps: torch.Tensor, reference: torch.Tensor, who: str) -> None:
    if not isinstance(maps, torch.Tensor) or maps.ndim not in (3, 4) or maps.shape[0] == 0:
        raise ValueError(
            f"{who}: maps must be a non-empty N x H x W or N x D x H x W tensor, got {getattr(maps, 'shape', type(maps))}"
        )
    if not isinstance(reference, torch.Tensor) or reference.shape != maps.shape:
        raise ValueError(
            f"{who}: reference must have the maps' shape {tuple(maps.shape)}, got {getattr(reference, 'shape', type(reference))}"
        )


def pointing_game(maps: torch.Tensor, reference: torch.Tensor, tolerance: int = 0) -> torch.Tensor:
    """Per sample: 1.0 when the map's maximum (the first one, in index order) lies in the reference
    grown by ``tolerance`` pixels (a (2 tolerance + 1)-wide square/cube; Zhang et al. used 15 pixels
    on natural images), 0.0 otherwise, NaN for an empty reference. Float64 N."""
    _check(maps, reference, "pointing_game")
    if tolerance < 0:
        raise ValueError(f"pointing_game: tolerance must be >= 0 pixels, got {tolerance}")
    grown = reference.bool()
    if tolerance:
        pool = F.max_pool2d if maps.ndim == 3 else F.max_pool3d
        grown = pool(grown[:, None].float(), 2 * tolerance + 1, stride=1, padding=tolerance)[:, 0] > 0
    peak = maps.flatten(1).argmax(dim=1)
    hit = grown.flatten(1).gather(1, peak[:, None])[:, 0].double()
    return torch.where(reference.flatten(1).any(dim=1), hit, torch.full_like(hit, float("nan")))


def _bounding_boxes(reference: torch.Tensor) -> torch.Tensor:
    """The axis-aligned bounding box of each sample's reference, as a bool mask of the same shape."""
    boxes = torch.zeros_like(reference, dtype=torch.bool)
    for index, sample in enumerate(reference.bool()):
        if not sample.any():
            continue
        where = sample.nonzero()
        low, high = where.min(dim=0).values, where.max(dim=0).values + 1
        boxes[(index, *(slice(int(a), int(b)) for a, b in zip(low, high)))] = True
    return boxes


def energy_pointing_game(maps: torch.Tensor, reference: torch.Tensor, region: str = "box") -> torch.Tensor:
    """Per sample: the share of the map's energy (sum of its values) inside the object, NaN for an
    empty reference or an all-zero map. ``region``: ``box`` = the reference's bounding box (Wang et
    al. 2020, who had boxes), ``mask`` = the reference voxels themselves. Float64 N in [0, 1]."""
    _check(maps, reference, "energy_pointing_game")
    if region not in ("box", "mask"):
        raise ValueError(f"energy_pointing_game: region must be 'box' or 'mask', got {region!r}")
    inside = _bounding_boxes(reference) if region == "box" else reference.bool()
    values = maps.double().clamp(min=0).flatten(1)
    total = values.sum(dim=1)
    share = (values * inside.flatten(1)).sum(dim=1) / total.clamp(min=torch.finfo(torch.float64).tiny)
    empty = ~reference.flatten(1).any(dim=1) | (total == 0)
    return torch.where(empty, torch.full_like(share, float("nan")), share)
