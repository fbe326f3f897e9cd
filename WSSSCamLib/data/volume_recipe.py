"""Volume-level classifier input: whole volumes, or slabs of a few slices, resampled to a fixed 3D grid.

A :class:`VolumeRecipe` (``kind: volume``) is the 3D counterpart of the slice recipe
(:class:`~WSSSCamLib.data.recipe.SliceRecipe`): the same intensity normalisation per case and channel,
then each case is cut along ``axis`` into slabs of ``slab`` slices (every ``stride`` slices; default
``stride = slab``: slabs side by side), or kept whole when ``slab`` is None, and every slab is resampled
trilinearly to the grid ``size`` = (D, H, W) (D along the axis). The result is the same
:class:`~WSSSCamLib.data.slices.SliceSet` container as for slices, with images N x C x D x H x W and
``slice_index`` = the slab's index within its case, so training, folds (by case), study units and the
report are shared with slice studies; a study's "slice" rows are then slabs.

Slab labels: 1 where the slab holds any foreground voxel of the mask (at native resolution), else 0;
without a mask every slab gets the case label. Slab windows: starts 0, stride, 2 stride, ... while the
slab fits; when the last one stops short of the end, one more slab ends at the last slice (it overlaps
its neighbour, whose shared voxels are then counted in both). A case thinner than ``slab`` is one slab.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import InvalidInputError
from .slices import SLICE_AXES, SliceSet
from .transforms import DEFAULT_CLIP_PERCENTILES, Compose, PercentileClip, ZScore
from .volume import Volume

DEFAULT_GRID: tuple[int, int, int] = (8, 96, 96)
"""Grid (D, H, W) of a volume recipe that does not say, in voxels (D along the recipe's axis)."""


def case_normalisation(clip_percentiles: tuple[float, float]) -> Compose:
    """The intensity normalisation of every recipe, per case and channel: clip to the percentiles of the
    non-zero voxels, then z-score of the non-zero voxels."""
    return Compose([PercentileClip(*clip_percentiles), ZScore()])


def normalisation_text(clip_percentiles: tuple[float, float]) -> str:
    """:func:`case_normalisation` in words (recorded in the model card)."""
    low, high = clip_percentiles
    return (
        f"per case and channel: clip to [{low}, {high}] percentiles of non-zero voxels, then z-score of non-zero voxels"
    )


def slab_starts(depth: int, slab: int, stride: int) -> list[int]:
    """First slice of each slab of ``slab`` slices in a case of ``depth`` slices (see the module docstring):
    0, stride, ... while a slab fits, plus one ending at the last slice when needed; [0] when depth <= slab."""
    if depth < 1 or slab < 1 or stride < 1:
        raise ValueError(f"slab_starts: depth, slab and stride must be >= 1, got {depth}, {slab}, {stride}")
    if depth <= slab:
        return [0]
    starts = list(range(0, depth - slab + 1, stride))
    if starts[-1] + slab < depth:
        starts.append(depth - slab)
    return starts


@dataclass
class VolumeRecipe:
    """How volumes become 3D classifier input (see the module docstring). ``size``: the grid (D, H, W) in
    voxels; ``slab``: slices per slab along ``axis`` (None: the whole volume is one item); ``stride``:
    slices between slab starts (default ``slab``)."""

    kind: str = "volume"
    size: tuple[int, int, int] = DEFAULT_GRID
    axis: str = "K"
    slab: int | None = None
    stride: int | None = None
    clip_percentiles: tuple[float, float] = DEFAULT_CLIP_PERCENTILES

    context_channel = None
    """No 2.5D context channel in 3D (the slab already holds its neighbours); a class attribute, not a field."""
    spatial_dims = 3
    """Spatial dimensions of the classifier input."""

    def __post_init__(self) -> None:
        self.size = tuple(int(s) for s in self.size)
        self.clip_percentiles = tuple(float(p) for p in self.clip_percentiles)
        if self.kind != "volume":
            raise ValueError(f"VolumeRecipe: kind must be 'volume', got {self.kind!r}")
        if len(self.size) != 3 or min(self.size) < 1:
            raise ValueError(f"VolumeRecipe: size must be three positive integers [D, H, W], got {self.size}")
        if self.axis not in SLICE_AXES:
            raise ValueError(f"VolumeRecipe: axis must be one of {list(SLICE_AXES)}, got {self.axis!r}")
        if self.slab is not None and self.slab < 1:
            raise ValueError(f"VolumeRecipe: slab must be >= 1 slices, got {self.slab}")
        if self.stride is not None and (self.slab is None or self.stride < 1):
            raise ValueError(f"VolumeRecipe: stride {self.stride} needs a slab and must be >= 1")

    @property
    def input_size(self) -> list[int]:
        """The network's input grid [D, H, W] (recorded in the model card)."""
        return list(self.size)

    def normalisation(self) -> str:
        """The recipe's intensity normalisation in words (recorded in the model card)."""
        return normalisation_text(self.clip_percentiles)

    def preprocess(self) -> Compose:
        """The intensity transforms of this recipe (per case and channel)."""
        return case_normalisation(self.clip_percentiles)

    def starts(self, depth: int) -> list[int]:
        """First slice of each item of a case of ``depth`` slices along the axis."""
        if self.slab is None:
            return [0]
        return slab_starts(depth, self.slab, self.stride or self.slab)

    def length(self, depth: int) -> int:
        """Slices per item in a case of ``depth`` slices along the axis."""
        return depth if self.slab is None else min(self.slab, depth)

    def native_slice_index(self, item: int, offset: int, depth: int) -> int:
        """Index along the axis of slice ``offset`` of item ``item`` in a case of ``depth`` slices."""
        return self.starts(depth)[item] + offset

    def _windows(self, array: np.ndarray) -> torch.Tensor:
        """``array`` (... x K x J x I, the last three spatial) as N x ... x length x h x w slab windows."""
        a = SLICE_AXES[self.axis] + array.ndim - 3
        moved = torch.from_numpy(np.ascontiguousarray(np.moveaxis(array, a, array.ndim - 3)))
        depth = moved.shape[-3]
        length = self.length(depth)
        return torch.stack([moved[..., s : s + length, :, :] for s in self.starts(depth)])

    def native_reference(self, mask: Volume) -> torch.Tensor:
        """The reference of each item at native resolution: N x length x h x w bool (axis first)."""
        return self._windows(mask.array) > 0

    def items(self, case_id: str, image: Volume, mask: Volume | None = None, case_label: int | None = None) -> SliceSet:
        """The case's slabs (or whole volume) on the grid: images N x C x D x H x W (trilinear,
        half-voxel centres), labels (any mask voxel in the native slab, else ``case_label``), masks
        N x D x H x W on the grid (a grid voxel is foreground when any native voxel under it is)."""
        if mask is None and case_label is None:
            raise InvalidInputError(f"case '{case_id}': slab labels need a mask or a case label")
        array = image.array if image.array.ndim == 4 else image.array[None]
        images = self._windows(array).float()  # N x C x length x h x w
        if tuple(images.shape[2:]) != self.size:
            images = F.interpolate(images, size=self.size, mode="trilinear", align_corners=False)
        masks = None
        if mask is not None:
            native = self.native_reference(mask)
            labels = native.flatten(1).any(1).long()
            masks = native
            if tuple(native.shape[1:]) != self.size:
                masks = F.interpolate(native[:, None].float(), size=self.size, mode="area")[:, 0] > 0
        else:
            labels = torch.full((images.shape[0],), int(case_label), dtype=torch.long)
        return SliceSet(images, labels, masks, [case_id] * images.shape[0], torch.arange(images.shape[0]))

    @classmethod
    def from_values(cls, values: dict) -> VolumeRecipe:
        """The recipe from its recorded fields (a model card's ``recipe``, a study configuration's)."""
        return cls(**values)


__all__ = [
    "DEFAULT_GRID",
    "VolumeRecipe",
    "case_normalisation",
    "normalisation_text",
    "slab_starts",
]
