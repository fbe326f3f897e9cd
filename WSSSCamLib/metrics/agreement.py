"""Agreement between the masks of several CAM methods or models (Syed et al. 2023, eqs. 17 and 18).

Syed et al. (2023), eq. 17: for a fixed model m the agreement of one slice is the mean IoU over
all unique pairs i < j of CAM methods, phi_m = 1 / C(|C|, 2) * sum_{i<j} IoU(c_i m, c_j m); eq. 18 is
the same across models for a fixed CAM method. Which of the two it is depends only on what the caller
passes as members.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .threshold_sweep import CHUNK_ELEMENTS, as_thresholds, bucketize, count_above


def pairwise_iou_agreement(masks: Sequence[torch.Tensor]) -> torch.Tensor:
    """Mean pairwise IoU of the member masks, per sample (Syed et al. 2023 eq. 17 / eq. 18).

    masks: M >= 2 binary masks, each N x *spatial, all of one shape and device.
    Returns float64 N: mean over the M (M - 1) / 2 unordered pairs of IoU(member i, member j).
    Convention: a pair whose two masks are both empty has IoU 1 (they agree on "nothing there").
    """
    members = list(masks)
    if len(members) < 2:
        raise ValueError(f"pairwise_iou_agreement: needs at least 2 member masks, got {len(members)}")
    shape = members[0].shape
    for index, member in enumerate(members):
        if member.shape != shape:
            raise ValueError(
                f"pairwise_iou_agreement: member 0 has shape {tuple(shape)} but member {index} has shape {tuple(member.shape)}"
            )
    # All pairwise intersections at once: per sample, the Gram matrix of the flattened masks
    # (exact: counts stay below 2^24 in float32, float64 beyond).
    flat = torch.stack([m.reshape(m.shape[0], -1) for m in members], dim=1)  # N x M x V
    dtype = torch.float32 if flat.shape[-1] < 2**24 else torch.float64
    flat = flat.to(dtype)
    intersection = (flat @ flat.transpose(1, 2)).double()  # N x M x M
    sizes = torch.diagonal(intersection, dim1=1, dim2=2)
    union = sizes[:, :, None] + sizes[:, None, :] - intersection
    iou = torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))
    upper = torch.triu_indices(len(members), len(members), offset=1, device=iou.device)
    return iou[:, upper[0], upper[1]].mean(dim=1)


def pairwise_iou_agreement_at_thresholds(maps: Sequence[torch.Tensor], thresholds: Sequence[float]) -> torch.Tensor:
    """``pairwise_iou_agreement([m > t for m in maps])`` for every t at once: float64 T x N.

    maps: M >= 2 float maps, each N x *spatial, one shape and device; thresholds: T floats (strict
    '>', cast to the maps' dtype as ``apply_threshold`` does). Each map is bucketed against the
    thresholds once; the mask of member i at t is ids_i > k(t), the intersection of a pair is
    min(ids_i, ids_j) > k(t), so per-sample histograms and reverse cumulative sums give every
    threshold's sizes and intersections without building a mask (same empty-pair convention).
    """
    members = list(maps)
    if len(members) < 2:
        raise ValueError(f"pairwise_iou_agreement_at_thresholds: needs at least 2 member maps, got {len(members)}")
    shape = members[0].shape
    for index, member in enumerate(members):
        if member.shape != shape or not member.is_floating_point():
            raise ValueError(
                f"pairwise_iou_agreement_at_thresholds: member {index} is {member.dtype} {tuple(member.shape)}, "
                f"member 0 {members[0].dtype} {tuple(shape)} (need float maps of one shape)"
            )
    values = as_thresholds(thresholds, "pairwise_iou_agreement_at_thresholds")
    n = shape[0]
    flats = [m.reshape(n, -1) for m in members]
    step = max(1, CHUNK_ELEMENTS // flats[0].shape[1])
    pairs = [(i, j) for i in range(len(members)) for j in range(i + 1, len(members))]
    parts = []
    for start in range(0, n, step):
        bucketed = [bucketize(flat[start : start + step], values) for flat in flats]
        inverse, buckets = bucketed[0][1], bucketed[0][2]
        sizes = [count_above(ids, inverse, buckets).double() for ids, _, _ in bucketed]  # count x T each
        total = torch.zeros_like(sizes[0])
        for i, j in pairs:  # member i and j both foreground <=> min(ids_i, ids_j) > k(t)
            intersection = count_above(torch.minimum(bucketed[i][0], bucketed[j][0]), inverse, buckets).double()
            union = sizes[i] + sizes[j] - intersection
            total += torch.where(union > 0, intersection / union.clamp(min=1), torch.ones_like(union))
        parts.append(total / len(pairs))
    return torch.cat(parts).T.contiguous()
