"""Where a CAM points, measured against reference masks: the pointing game (Zhang et al. 2016,
"Top-down neural attention by excitation backprop") and the energy-based pointing game (Wang et al.
2020, Score-CAM).

Conventions: ``maps`` float N x *spatial (2D slices or 3D volumes), ``reference`` bool of the same
shape; samples with an empty reference have no object to point at and score NaN (leave them out of
means with ``nanmean``). Everything stays on the maps' device.
"""

from __future__ import annotations

import torch


def _check(maps: torch.Tensor, reference: torch.Tensor, who: str) -> None:
    if not isinstance(maps, torch.Tensor) or maps.ndim not in (3, 4) or maps.shape[0] == 0:
        raise ValueError(
            f"{who}: maps must be a non-empty N x H x W or N x D x H x W tensor, got {getattr(maps, 'shape', type(maps))}"
        )
    if not isinstance(reference, torch.Tensor) or reference.shape != maps.shape:
        raise ValueError(
            f"{who}: reference must have the maps' shape {tuple(maps.shape)}, got {getattr(reference, 'shape', type(reference))}"
        )


def pointing_game(maps: torch.Tensor, reference: torch.Tensor, tolerance: float = 0.0) -> torch.Tensor:
    """Per sample: 1.0 when the map's maximum (the first one, in index order) lies in the reference or
    within ``tolerance`` pixels (Euclidean distance to its nearest reference pixel; Zhang et al. used
    15 pixels on natural images), 0.0 otherwise, NaN for an empty reference. A constant map (e.g. all
    zero) has no maximum to point with and scores 0.0. Float64 N."""
    from scipy.ndimage import distance_transform_edt

    _check(maps, reference, "pointing_game")
    if not tolerance >= 0:
        raise ValueError(f"pointing_game: tolerance must be >= 0 pixels, got {tolerance}")
    flat = maps.flatten(1)
    peak = flat.argmax(dim=1)
    pointing = flat.amax(dim=1) > flat.amin(dim=1)
    hit = (reference.bool().flatten(1).gather(1, peak[:, None])[:, 0] & pointing).double()
    if tolerance > 0:
        for index in (~hit.bool() & pointing).nonzero()[:, 0].tolist():
            sample = reference[index].bool().cpu().numpy()
            if sample.any():
                distance = distance_transform_edt(~sample).reshape(-1)[int(peak[index])]
                hit[index] = float(distance <= tolerance)
    return torch.where(reference.flatten(1).any(dim=1), hit, torch.full_like(hit, float("nan")))


def _bounding_boxes(reference: torch.Tensor) -> torch.Tensor:
    """Per sample, the union of the bounding boxes of the reference's objects (connected components,
    8-connected in 2D, 26 in 3D), as a bool mask of the same shape: each lesion gets its own box, as
    each object of an image does in Wang et al. 2020."""
    from scipy.ndimage import find_objects, generate_binary_structure, label

    boxes = torch.zeros(reference.shape, dtype=torch.bool)
    structure = generate_binary_structure(reference.ndim - 1, reference.ndim - 1)
    for index, sample in enumerate(reference.bool().cpu().numpy()):
        labelled, _ = label(sample, structure=structure)
        for box in find_objects(labelled):
            if box is not None:
                boxes[(index, *box)] = True
    return boxes.to(reference.device)


def energy_pointing_game(maps: torch.Tensor, reference: torch.Tensor, region: str = "box") -> torch.Tensor:
    """Per sample: the share of the map's energy (sum of its values) inside the object, NaN for an
    empty reference or an all-zero map. ``region``: ``box`` = the union of the bounding boxes of the
    reference's objects (Wang et al. 2020, who had boxes), ``mask`` = the reference voxels themselves.
    Float64 N in [0, 1]."""
    _check(maps, reference, "energy_pointing_game")
    if region not in ("box", "mask"):
        raise ValueError(f"energy_pointing_game: region must be 'box' or 'mask', got {region!r}")
    inside = _bounding_boxes(reference) if region == "box" else reference.bool()
    values = maps.double().clamp(min=0).flatten(1)
    total = values.sum(dim=1)
    share = (values * inside.flatten(1)).sum(dim=1) / total.clamp(min=torch.finfo(torch.float64).tiny)
    empty = ~reference.flatten(1).any(dim=1) | (total == 0)
    return torch.where(empty, torch.full_like(share, float("nan")), share)
