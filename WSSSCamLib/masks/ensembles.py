"""Ensembles of CAM masks (Ostrowski et al. 2023, section 2.3 and the threshold search).

Ostrowski et al. 2023 combines the thresholded masks of several members (CAMs of different models or methods):
'or' sums (unites) the member masks, 'and' multiplies them, '<' ('min') and '>' ('max') "only take the
masks with the least or most positive classified pixels" - a whole-mask choice per sample, not a
voxel-wise min/max. Every member has its own threshold; Ostrowski et al. 2023 tests "all combinations of
thresholds from 0 to 1 in steps of 0.1" on the training split and keeps the best (here the grid
THRESHOLD_GRID = 0.1..0.9, since t = 0 and t = 1 give full and empty masks). Beyond the paper:
'majority' (a voxel is foreground when strictly more than half of the members say so) and 'mean'
(threshold the mean of the member maps with one threshold: ``mean_map_mask``).

Masks are bool N x *spatial, maps float N x *spatial in [0, 1]; everything stays on the device.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

import torch

from ..metrics.confusion import pooled_score_columns
from ..metrics.threshold_sweep import CHUNK_ELEMENTS, as_thresholds, bucketize
from .thresholds import THRESHOLD_GRID, fixed_threshold_counts

RULES: tuple[str, ...] = ("and", "or", "<", ">", "majority", "mean")
_VOXELWISE = ("and", "or", "majority")


def _check_rule(rule: str, who: str) -> None:
    if rule not in RULES:
        raise ValueError(f"{who}: unknown ensemble rule {rule!r}; accepted rules {RULES}")


def _check_members(members: list[torch.Tensor], who: str, shape: torch.Size | None = None) -> torch.Size:
    if not members:
        raise ValueError(f"{who}: needs at least one member")
    shape = members[0].shape if shape is None else shape
    for index, member in enumerate(members):
        if member.shape != shape:
            raise ValueError(f"{who}: member {index} has shape {tuple(member.shape)}, expected {tuple(shape)}")
    return shape


def _first_extreme(values: torch.Tensor, dim: int, largest: bool) -> torch.Tensor:
    """Index of the first minimum (or maximum) along dim; ties go to the earlier entry."""
    best = values.max(dim=dim, keepdim=True).values if largest else values.min(dim=dim, keepdim=True).values
    return (values == best).int().argmax(dim=dim)


def combine_masks(masks: Sequence[torch.Tensor], rule: str) -> torch.Tensor:
    """Combine member masks (each bool N x *spatial) into one bool N x *spatial mask.

    'and': voxel in every member (Ostrowski et al. 2023's product); 'or': in any member (union); '<': per sample
    the WHOLE mask of the member with the fewest foreground voxels, '>' with the most (ties go to
    the earlier member); 'majority': in strictly more than half of the members. 'mean' combines maps,
    not masks: use ``mean_map_mask``.
    """
    _check_rule(rule, "combine_masks")
    if rule == "mean":
        raise ValueError("combine_masks: rule 'mean' averages maps, not masks; use mean_map_mask(maps, threshold)")
    members = list(masks)
    _check_members(members, "combine_masks")
    stack = torch.stack([m.bool() for m in members])  # M x N x *spatial
    if rule == "and":
        return stack.all(dim=0)
    if rule == "or":
        return stack.any(dim=0)
    if rule == "majority":
        return stack.sum(dim=0) * 2 > len(members)
    areas = stack.reshape(stack.shape[0], stack.shape[1], -1).sum(dim=2)  # M x N
    choice = _first_extreme(areas, dim=0, largest=(rule == ">"))  # N
    return stack[choice, torch.arange(stack.shape[1], device=stack.device)]


def _mean_map(maps: Sequence[torch.Tensor]) -> torch.Tensor:
    members = list(maps)
    _check_members(members, "mean_map_mask")
    return torch.stack(members).mean(dim=0)


def mean_map_mask(maps: Sequence[torch.Tensor], threshold: float) -> torch.Tensor:
    """Mean of the member maps (each float N x *spatial) > threshold (strict): bool N x *spatial."""
    mean = _mean_map(maps)
    return mean > torch.tensor(float(threshold), dtype=mean.dtype, device=mean.device)


def ensemble_mask(maps: Sequence[torch.Tensor], rule: str, thresholds: Sequence[float]) -> torch.Tensor:
    """The ensemble's mask at one threshold combination: bool N x *spatial from member maps (each float
    N x *spatial in [0, 1]) - ``combine_masks([map_i > t_i], rule)``, or for 'mean' ``mean_map_mask(maps, t)``
    with ``thresholds`` = (t,). Exactly what :func:`ensemble_counts` counts for that combination."""
    _check_rule(rule, "ensemble_mask")
    members = list(maps)
    values = [float(t) for t in thresholds]
    if rule == "mean":
        if len(values) != 1:
            raise ValueError(f"ensemble_mask: rule 'mean' takes one threshold, got {len(values)}")
        return mean_map_mask(members, values[0])
    if len(values) != len(members):
        raise ValueError(f"ensemble_mask: {len(values)} thresholds for {len(members)} members")
    _check_members(members, "ensemble_mask")
    return combine_masks([m > torch.tensor(t, dtype=m.dtype, device=m.device) for m, t in zip(members, values)], rule)


def ensemble_combinations(members: int, rule: str, grid: Sequence[float] = THRESHOLD_GRID) -> list[tuple[float, ...]]:
    """All per-member threshold tuples searched for ``rule``, in itertools.product order.

    members: number of members M >= 1. Returns len(grid) ** M tuples of M thresholds, or for 'mean'
    (one threshold on the mean map) the len(grid) 1-tuples.
    """
    _check_rule(rule, "ensemble_combinations")
    if members < 1:
        raise ValueError(f"ensemble_combinations: needs at least one member, got {members}")
    values = [float(t) for t in grid]
    if not values:
        raise ValueError("ensemble_combinations: grid is empty")
    if rule == "mean":
        return [(t,) for t in values]
    return list(itertools.product(values, repeat=members))


def _joint_histograms(flats: list[torch.Tensor], ref: torch.Tensor, grid: torch.Tensor):
    """Per-sample histograms of the joint bucket ids of all members (all voxels, and reference voxels).

    Returns (hist_all N x B, hist_ref N x B int64, inverses list of G-index -> bucket-threshold index,
    sizes list of bucket counts per member); bucket id of member i is ids_i in 0..sizes[i]-1 and the
    joint id is sum_i ids_i * prod_{k<i} sizes[k].
    """
    n, voxels = ref.shape
    inverses, sizes = [], []
    for flat in flats:
        _, inverse, size = bucketize(flat[:1, :1], grid)
        inverses.append(inverse)
        sizes.append(size)
    bins = 1
    for size in sizes:
        bins *= size
    step = max(1, CHUNK_ELEMENTS // voxels)
    hist_all = torch.empty(n, bins, dtype=torch.int64, device=ref.device)
    hist_ref = torch.empty(n, bins, dtype=torch.int64, device=ref.device)
    for start in range(0, n, step):
        stop = min(n, start + step)
        joint = torch.zeros(stop - start, voxels, dtype=torch.int64, device=ref.device)
        stride = 1
        for flat, size in zip(flats, sizes):
            ids, _, _ = bucketize(flat[start:stop], grid)
            joint += ids * stride
            stride *= size
        joint += bins * torch.arange(stop - start, device=ref.device)[:, None]
        hist_all[start:stop] = torch.bincount(joint.reshape(-1), minlength=(stop - start) * bins).view(-1, bins)
        hist_ref[start:stop] = torch.bincount(joint[ref[start:stop]], minlength=(stop - start) * bins).view(-1, bins)
    return hist_all, hist_ref, inverses, sizes


def _voxelwise_counts(flats, ref, rule, grid, combo_index, chunk) -> torch.Tensor:
    n, voxels = ref.shape
    hist_all, hist_ref, inverses, sizes = _joint_histograms(flats, ref, grid)
    used = (hist_all.sum(0) > 0).nonzero().squeeze(1)  # occupied joint bins only
    buckets = []
    remainder = used.clone()
    for size in sizes:
        buckets.append(remainder % size)
        remainder = remainder // size
    buckets = torch.stack(buckets, dim=1)  # Bu x M: bucket id of each member in each occupied bin
    all_used = hist_all[:, used].double()
    ref_used = hist_ref[:, used].double()
    actual = ref.sum(1)[None, :]  # int64 (sum of bool)
    members = len(flats)
    parts = []
    for start in range(0, combo_index.shape[0], chunk):
        grid_index = combo_index[start : start + chunk]  # K x M
        limits = torch.stack([inverses[i][grid_index[:, i]] for i in range(members)], dim=1)  # K x M
        foreground = buckets[None, :, :] > limits[:, None, :]  # K x Bu x M: member says foreground
        if rule == "and":
            chosen = foreground.all(dim=2)
        elif rule == "or":
            chosen = foreground.any(dim=2)
        else:  # majority
            chosen = foreground.sum(dim=2) * 2 > members
        indicator = chosen.double().T  # Bu x K
        tp = (ref_used @ indicator).round().to(torch.int64).T  # K x N (exact: integer sums < 2**53)
        predicted = (all_used @ indicator).round().to(torch.int64).T
        fp = predicted - tp
        fn = actual - tp
        tn = voxels - tp - fp - fn
        parts.append(torch.stack([tp, fp, fn, tn], dim=-1))
    return torch.cat(parts, dim=0)


def _choice_counts(members, reference, rule, grid, combo_index, chunk) -> torch.Tensor:
    per_member = torch.stack([fixed_threshold_counts(m, reference, grid) for m in members])  # M x G x N x 4
    areas = per_member[..., 0] + per_member[..., 1]  # M x G x N
    count, n = len(members), reference.shape[0]
    member_axis = torch.arange(count, device=reference.device)
    samples = torch.arange(n, device=reference.device)
    parts = []
    for start in range(0, combo_index.shape[0], chunk):
        grid_index = combo_index[start : start + chunk]  # K x M
        combo_areas = areas[member_axis[None, :], grid_index]  # K x M x N
        choice = _first_extreme(combo_areas, dim=1, largest=(rule == ">"))  # K x N
        chosen_grid = grid_index.gather(1, choice)  # K x N
        parts.append(per_member[choice, chosen_grid, samples[None, :]])  # K x N x 4
    return torch.cat(parts, dim=0)


def ensemble_counts(
    member_maps: Sequence[torch.Tensor],
    reference: torch.Tensor,
    rule: str,
    grid: Sequence[float] = THRESHOLD_GRID,
    chunk: int = 512,
) -> tuple[list[tuple[float, ...]], torch.Tensor]:
    """Confusion counts of the ensemble for every per-member threshold combination.

    member_maps: M maps, each float N x *spatial; reference: bool N x *spatial. Returns
    (combos, counts) with combos = ensemble_combinations(M, rule, grid) and counts int64 C x N x 4
    (tp, fp, fn, tn), exactly those of ``confusion_counts(combine_masks([map_i > t_i], rule), reference)``
    (or ``mean_map_mask(maps, t)`` for 'mean').

    How: each member's values are bucketed against the grid; 'and' / 'or' / 'majority' count a
    per-sample joint histogram of the member buckets (memory N x (G + 1) ** M) and evaluate every
    combination as an indicator over the occupied joint bins; '<' / '>' pick per sample and combo the
    member's own counts; 'mean' counts the mean map. ``chunk`` combinations are evaluated at a time
    (memory about chunk x occupied bins x 9 bytes).
    """
    _check_rule(rule, "ensemble_counts")
    if chunk < 1:
        raise ValueError(f"ensemble_counts: chunk must be >= 1, got {chunk}")
    members = list(member_maps)
    _check_members(members, "ensemble_counts", reference.shape)
    for index, member in enumerate(members):
        if not member.is_floating_point():
            raise ValueError(f"ensemble_counts: member {index} must be a float map, got {member.dtype}")
    if reference.ndim < 2:
        raise ValueError(f"ensemble_counts: reference must be N x *spatial, got shape {tuple(reference.shape)}")
    combos = ensemble_combinations(len(members), rule, grid)
    values = as_thresholds(list(grid), "ensemble_counts")
    if rule == "mean":
        return combos, fixed_threshold_counts(_mean_map(members), reference, values)
    combo_index = torch.tensor(
        list(itertools.product(range(values.numel()), repeat=len(members))), dtype=torch.int64, device=reference.device
    ).reshape(-1, len(members))
    if rule in _VOXELWISE:
        n = reference.shape[0]
        flats = [m.reshape(n, -1) for m in members]
        counts = _voxelwise_counts(flats, reference.reshape(n, -1).bool(), rule, values, combo_index, chunk)
    else:
        counts = _choice_counts(members, reference, rule, values, combo_index, chunk)
    return combos, counts


def grid_search(counts: torch.Tensor, combos: list[tuple[float, ...]]) -> tuple[int, torch.Tensor]:
    """Pick the threshold combination with the best pooled Ostrowski et al. (2023) DSC.

    counts: int64 C x N x 4 from ``ensemble_counts``; combos: its C combinations. Score of combo c:
    ``pooled_scores(counts[c]).dsc_miou`` (counts pooled over the N samples, mIoU of background and
    foreground, DSC = 2 mIoU / (1 + mIoU)). Returns (index of the best combo, float64 C scores);
    ties go to the first (lowest) index; NaN scores never win (all NaN -> index 0).
    """
    if counts.ndim != 3 or counts.shape[-1] != 4:
        raise ValueError(f"grid_search: counts must be C x N x 4, got shape {tuple(counts.shape)}")
    if counts.shape[0] == 0 or len(combos) != counts.shape[0]:
        raise ValueError(
            f"grid_search: {len(combos)} combos for {counts.shape[0]} count rows (need the same, at least 1)"
        )
    scores = pooled_score_columns(counts.to(torch.int64).sum(dim=1))["dsc_miou"]
    safe = torch.where(torch.isnan(scores), torch.full_like(scores, -torch.inf), scores)
    best = int((safe == safe.max()).int().argmax().item())
    return best, scores
