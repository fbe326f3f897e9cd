"""From volumes to 2D slice batches with slice-level labels (the classifier's training data).

A :class:`SliceSet` holds N slices as tensors, N x C x H x W, with per-slice labels, reference
masks (when known) and where each slice came from (case id and index along the slicing axis).
Axes are named in KJI terms: slicing along ``"K"`` (axis 0 of a K x J x I array) gives the usual
axial slices of an axial acquisition, each H x W = J x I.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from .volume import Volume

SLICE_AXES: dict[str, int] = {"K": 0, "J": 1, "I": 2}
"""Slicing axis name -> array axis of a K x J x I volume (of a C x K x J x I image: that + 1)."""


@dataclass
class SliceSet:
    """``images`` N x C x H x W float32; ``labels`` N int64; ``masks`` N x H x W bool or None;
    ``case_ids`` and ``slice_index`` (position along the slicing axis) for each slice."""

    images: torch.Tensor
    labels: torch.Tensor
    masks: torch.Tensor | None
    case_ids: list[str]
    slice_index: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, keep: torch.Tensor | Sequence[int]) -> SliceSet:
        keep = torch.as_tensor(keep)
        if keep.dtype == torch.bool:
            keep = torch.nonzero(keep).squeeze(1)
        return SliceSet(
            self.images[keep],
            self.labels[keep],
            None if self.masks is None else self.masks[keep],
            [self.case_ids[i] for i in keep.tolist()],
            self.slice_index[keep],
        )

    def of_cases(self, case_ids: Sequence[str]) -> SliceSet:
        wanted = set(case_ids)
        return self.subset(torch.tensor([c in wanted for c in self.case_ids], dtype=torch.bool))

    @staticmethod
    def concatenate(parts: Sequence[SliceSet]) -> SliceSet:
        masks = None if any(p.masks is None for p in parts) else torch.cat([p.masks for p in parts])
        return SliceSet(
            torch.cat([p.images for p in parts]),
            torch.cat([p.labels for p in parts]),
            masks,
            [c for p in parts for c in p.case_ids],
            torch.cat([p.slice_index for p in parts]),
        )


def extract_slices(
    case_id: str,
    image: Volume,
    mask: Volume | None = None,
    axis: str = "K",
    case_label: int | None = None,
    size: Sequence[int] | None = None,
    context_channel: int | None = None,
) -> SliceSet:
    """All slices of ``image`` (C x K x J x I) along ``axis``.

    Slice labels: 1 where the slice of ``mask`` holds any foreground voxel, else 0; without a
    mask, every slice gets ``case_label``. ``size`` (H, W) resizes slices bilinearly for the classifier
    and masks so that an output pixel is foreground when any voxel under it is (labels stay true). ``context_channel`` (2.5D input): appends that
    channel's previous and next slice (the edge slice repeated at the ends) as two more channels.
    """
    if axis not in SLICE_AXES:
        raise ValueError(f"slicing axis must be one of {list(SLICE_AXES)}, got '{axis}'")
    if mask is None and case_label is None:
        raise InvalidInputError(f"case '{case_id}': slice labels need a mask or a case label")
    a = SLICE_AXES[axis]
    array = image.array if image.array.ndim == 4 else image.array[None]
    images = torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, a + 1, 0)))  # N, C, H, W
    if context_channel is not None:
        centre = images[:, context_channel]
        previous = torch.cat([centre[:1], centre[:-1]])
        following = torch.cat([centre[1:], centre[-1:]])
        images = torch.cat([images, previous[:, None], following[:, None]], dim=1)
    masks = None
    if mask is not None:
        masks = torch.from_numpy(np.ascontiguousarray(np.moveaxis(mask.array, a, 0)) > 0)
        labels = masks.flatten(1).any(1).long()
    else:
        labels = torch.full((images.shape[0],), int(case_label), dtype=torch.long)
    if size is not None and tuple(images.shape[2:]) != tuple(size):
        images = F.interpolate(images, size=tuple(size), mode="bilinear", align_corners=False)
        if masks is not None:
            # 'area' (a mean over each output pixel's input window) > 0: an output pixel is foreground when
            # any voxel under it is, so a slice labelled abnormal never loses its whole lesion when shrunk
            masks = F.interpolate(masks[:, None].float(), size=tuple(size), mode="area")[:, 0] > 0
    return SliceSet(images.float(), labels, masks, [case_id] * images.shape[0], torch.arange(images.shape[0]))
