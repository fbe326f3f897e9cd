"""What a CAM explains: a class per sample, and for segmentation networks a pixel/voxel set M.

For a classifier with logits Y (N x K) the explained score of sample n is Y[n, c_n].
For a segmentation network with logits Y (N x K x *spatial) it is the Seg-Grad-CAM target
``y_n = sum_{p in M_n} Y[n, c_n, p]``, with M_n a :class:`Region`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Union

import torch

ClassTarget = Union[int, Sequence[int], torch.Tensor, None]
"""One class for all samples (int), one per sample (sequence or 1-D tensor), or None (predicted class)."""


def _integer_tensor(target: object) -> torch.Tensor:
    """``target`` as a LongTensor; ``TypeError``/``ValueError`` for anything but integer class indices (True, "1", 1.5)."""
    if isinstance(target, (bool, str, bytes)):
        raise TypeError(f"target must be integer class indices, got {target!r}")
    try:
        values = torch.as_tensor(target)
    except (TypeError, ValueError, RuntimeError):
        raise ValueError(f"target must be an int, a sequence of ints or a 1-D integer tensor, got {target!r}") from None
    if values.dtype == torch.bool:
        raise TypeError(f"target must be integer class indices, got {target!r}")
    if values.is_floating_point() or values.is_complex():
        raise ValueError(
            f"target must be integer class indices, got {target!r} (dtype {values.dtype}); "
            "a fractional class such as 1.5 is not a class"
        )
    return values.long()


def check_logits(logits: torch.Tensor) -> None:
    """Raise ``ValueError`` when the model's output holds NaN or infinite values (non-finite weights, or an
    overflow): the gradients, maps and the eigen decomposition of Eigen-CAM would be meaningless."""
    finite = torch.isfinite(logits)
    if not bool(finite.all()):
        samples = (~finite).reshape(logits.shape[0], -1).any(1).nonzero().flatten().tolist()
        raise ValueError(
            f"the model's output is NaN or infinite for samples {samples[:10]} although the input is finite "
            "(non-finite weights?)"
        )


def class_indices(target: ClassTarget, logits: torch.Tensor) -> torch.Tensor:
    """Resolve ``target`` to a LongTensor of N class indices on the logits' device.

    ``logits`` is N x K (classifier) or N x K x *spatial (segmentation net; the predicted class
    is then the one with the largest summed logit). Raises ``ValueError`` for an index outside
    [0, K) or a per-sample list whose length is not N.
    """
    n, k = logits.shape[0], logits.shape[1]
    if target is None:
        scores = logits if logits.ndim == 2 else logits.flatten(2).sum(-1)
        return scores.argmax(dim=1)
    if isinstance(target, int) and not isinstance(target, bool):
        indices = torch.full((n,), target, dtype=torch.long, device=logits.device)
    else:
        indices = _integer_tensor(target).to(logits.device).reshape(-1)
        if indices.numel() == 1 and n != 1:
            indices = indices.expand(n)
        if indices.numel() != n:
            raise ValueError(f"got {indices.numel()} target classes for a batch of {n} samples")
    bad = (indices < 0) | (indices >= k)
    if bool(bad.any()):
        raise ValueError(
            f"target class {indices[bad][0].item()} is out of range: the model has {k} classes (0..{k - 1})"
        )
    return indices


RegionKind = Literal["mask", "box", "point", "predicted", "everything"]


@dataclass(frozen=True)
class Region:
    """The pixel/voxel set M of a Seg-Grad-CAM target, on the output grid of the network.

    Build it with one of the constructors:

    * ``Region.from_mask(mask)``: a boolean tensor, spatial (H x W / D x H x W, shared) or N x spatial;
    * ``Region.from_box(start, stop)``: a box given by inclusive start and exclusive stop indices
      per spatial axis, in tensor axis order (H, W) or (D, H, W);
    * ``Region.from_point(index)``: one pixel/voxel, in tensor axis order;
    * ``Region.predicted()``: where the network's argmax over classes equals the target class;
    * ``Region.everything()``: every pixel/voxel.
    """

    kind: RegionKind
    mask: torch.Tensor | None = None
    start: tuple[int, ...] | None = None
    stop: tuple[int, ...] | None = None

    @classmethod
    def from_mask(cls, mask: torch.Tensor) -> Region:
        return cls("mask", mask=torch.as_tensor(mask).bool())

    @classmethod
    def from_box(cls, start: Sequence[int], stop: Sequence[int]) -> Region:
        if len(start) != len(stop):
            raise ValueError(f"box start {tuple(start)} and stop {tuple(stop)} have different lengths")
        if any(b <= a for a, b in zip(start, stop)):
            raise ValueError(f"box start {tuple(start)} must be below stop {tuple(stop)} on every axis")
        return cls("box", start=tuple(int(v) for v in start), stop=tuple(int(v) for v in stop))

    @classmethod
    def from_point(cls, index: Sequence[int]) -> Region:
        index = tuple(int(v) for v in index)
        return cls("point", start=index, stop=tuple(v + 1 for v in index))

    @classmethod
    def predicted(cls) -> Region:
        return cls("predicted")

    @classmethod
    def everything(cls) -> Region:
        return cls("everything")

    def to_mask(self, logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
        """The boolean mask M, N x *spatial, for segmentation logits N x K x *spatial."""
        n, spatial = logits.shape[0], tuple(logits.shape[2:])
        if self.kind == "everything":
            return torch.ones((n, *spatial), dtype=torch.bool, device=logits.device)
        if self.kind == "predicted":
            view = (n,) + (1,) * len(spatial)
            return logits.argmax(dim=1) == classes.view(view)
        if self.kind == "mask":
            mask = self.mask.to(logits.device)
            if tuple(mask.shape[-len(spatial) :]) != spatial or mask.ndim not in (len(spatial), len(spatial) + 1):
                raise ValueError(f"region mask of shape {tuple(mask.shape)} does not match the output grid {spatial}")
            return mask.expand(n, *spatial) if mask.ndim == len(spatial) else mask
        if len(self.start) != len(spatial):
            raise ValueError(
                f"region {self.kind} {self.start} has {len(self.start)} axes; the output grid {spatial} has {len(spatial)}"
            )
        if any(a < 0 or b > s for a, b, s in zip(self.start, self.stop, spatial)):
            raise ValueError(f"region {self.kind} {self.start}..{self.stop} lies outside the output grid {spatial}")
        mask = torch.zeros((n, *spatial), dtype=torch.bool, device=logits.device)
        mask[(slice(None),) + tuple(slice(a, b) for a, b in zip(self.start, self.stop))] = True
        return mask


def explained_scores(logits: torch.Tensor, classes: torch.Tensor, region_mask: torch.Tensor | None) -> torch.Tensor:
    """Per-sample scores Y^c (N,): the class logit, or for segmentation logits their sum over M."""
    rows = torch.arange(logits.shape[0], device=logits.device)
    selected = logits[rows, classes]
    if logits.ndim == 2:
        return selected
    if region_mask is None:
        raise ValueError("a segmentation network's output needs a Region (the pixel/voxel set M)")
    return (selected * region_mask.to(selected.dtype)).flatten(1).sum(1)
