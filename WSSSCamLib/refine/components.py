"""Connected components of a CAM mask and classifier gating, 2D and 3D.

:class:`Components` (``components``) labels each sample's mask with connected-components-3d (cc3d,
W. Silversmith's library; the classic two-pass union-find labelling of Rosenfeld and Pfaltz 1966)
and keeps

- ``keep=peak`` (default): the component that holds the CAM peak inside the mask (the mask voxel with
  the highest map value; ties go to the first voxel in C order), a common WSSS post-processing step
  (one lesion per positive slice / volume is the prior it encodes);
- ``keep=largest``: the component with the most voxels (ties go to the component whose first voxel
  comes first in C order);
- ``keep=above``: every component whose maximum CAM value is strictly above ``min_peak`` (default 0.8,
  compared in the maps' dtype), i.e. drop blobs the CAM was never confident about.

``connectivity``: neighbours that join a component, 4 or 8 for 2D samples, 6, 18 or 26 for 3D;
default (unset) the full neighbourhood, 8 in 2D and 26 in 3D. ``gate=true`` additionally empties
every sample the classifier calls negative (:func:`WSSSCamLib.masks.classifier_positive`, the one
rule: positive when the target-class probability is strictly above 0.5), and then needs the
probabilities.

:class:`Gate` (``gate``) is that gating on its own (no settings), for any mask, e.g. after an ensemble.

Shapes: masks bool N x *spatial, maps float N x *spatial in [0, 1], probabilities float N (for the
gate). Images are not used. Labelling runs per sample on the CPU; the result returns to the masks' device.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..masks import classifier_positive, suppress_negatives
from .base import Step, back, check_choice, check_inputs, check_setting, check_unit, in_dtype_of, to_numpy

KEEP = ("peak", "largest", "above")
CONNECTIVITY = {2: (4, 8), 3: (6, 18, 26)}


def label_components(mask: np.ndarray, connectivity: int) -> tuple[np.ndarray, int]:
    """(labels uint32 of the mask's shape, 0 = background, 1..count = components; count) with cc3d."""
    import cc3d

    labels, count = cc3d.connected_components(
        np.ascontiguousarray(mask, dtype=np.uint8), connectivity=connectivity, return_N=True
    )
    return labels, int(count)


def keep_components(mask: np.ndarray, cam: np.ndarray, keep: str, connectivity: int, min_peak: float) -> np.ndarray:
    """The kept components of one sample (bool, the mask's shape); see the module docstring."""
    labels, count = label_components(mask, connectivity)
    if count == 0:
        return np.zeros(mask.shape, dtype=bool)
    flat = labels.ravel()
    if keep == "peak":
        chosen = flat[int(np.argmax(np.where(mask.ravel(), cam.ravel(), -np.inf)))]
        return labels == chosen
    if keep == "largest":
        sizes = np.bincount(flat, minlength=count + 1)[1:]
        ids, first = np.unique(flat, return_index=True)  # first voxel (C order) of every label
        first_of = dict(zip(ids.tolist(), first.tolist()))
        largest = [label for label in range(1, count + 1) if sizes[label - 1] == sizes.max()]
        return labels == min(largest, key=first_of.__getitem__)
    peaks = np.full(count + 1, -np.inf)
    np.maximum.at(peaks, flat, cam.ravel())
    peaks[0] = -np.inf
    return (peaks > min_peak)[labels]


@dataclass(frozen=True)
class Components(Step):
    """Keep connected components by CAM peak, size or confidence, optionally gated by the classifier.

    keep: peak | largest | above; min_peak: the cut of keep=above (in [0, 1], default 0.8; refused with
    the other modes); connectivity: 4/8 (2D) or 6/18/26 (3D), unset = 8 / 26; gate: empty samples with
    classifier probability <= 0.5. See the module docstring. Defaults are a priori, not tuned on any data.
    """

    kind = "components"
    keep: str = "peak"
    min_peak: float | None = None
    connectivity: int | None = None
    gate: bool = False

    def __post_init__(self) -> None:
        check_choice(self.kind, "keep", self.keep, KEEP)
        if self.keep == "above":
            min_peak = 0.8 if self.min_peak is None else self.min_peak
            check_unit(self.kind, "min_peak", min_peak)
            object.__setattr__(self, "min_peak", float(min_peak))
        else:
            check_setting(self.min_peak is None, self.kind, "min_peak", "only applies to keep=above", self.min_peak)
        if self.connectivity is not None:
            allowed = CONNECTIVITY[2] + CONNECTIVITY[3]
            check_setting(
                self.connectivity in allowed,
                self.kind,
                "connectivity",
                "must be 4 or 8 (2D) or 6, 18 or 26 (3D)",
                self.connectivity,
            )
            object.__setattr__(self, "connectivity", int(self.connectivity))
        check_setting(isinstance(self.gate, bool), self.kind, "gate", "must be true or false", self.gate)

    @property
    def needs_probabilities(self) -> bool:
        return self.gate

    def __call__(
        self,
        masks: torch.Tensor,
        maps: torch.Tensor,
        images: torch.Tensor | None = None,
        probabilities: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_inputs(self.kind, masks, maps, images, probabilities, need_probabilities=self.gate)
        dims = masks.ndim - 1
        connectivity = CONNECTIVITY[dims][-1] if self.connectivity is None else self.connectivity
        check_setting(
            connectivity in CONNECTIVITY[dims],
            self.kind,
            "connectivity",
            f"must be one of {CONNECTIVITY[dims]} for {dims}D samples",
            connectivity,
        )
        min_peak = None if self.min_peak is None else in_dtype_of(self.min_peak, maps)
        mask_array, map_array = to_numpy(masks), to_numpy(maps)
        out = np.empty(mask_array.shape, dtype=bool)
        for index in range(mask_array.shape[0]):
            out[index] = keep_components(mask_array[index], map_array[index], self.keep, connectivity, min_peak)
        result = back(out, masks)
        return gate(result, probabilities) if self.gate else result


def gate(masks: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """Empty the samples whose classifier probability is not above 0.5 (``classifier_positive``)."""
    positive = classifier_positive(torch.as_tensor(probabilities).detach().cpu())
    return suppress_negatives(masks, positive.to(masks.device))


@dataclass(frozen=True)
class Gate(Step):
    """Classifier gating on its own: samples with target-class probability <= 0.5 get an empty mask."""

    kind = "gate"

    @property
    def needs_probabilities(self) -> bool:
        return True

    def __call__(
        self,
        masks: torch.Tensor,
        maps: torch.Tensor,
        images: torch.Tensor | None = None,
        probabilities: torch.Tensor | None = None,
    ) -> torch.Tensor:
        check_inputs(self.kind, masks, maps, images, probabilities, need_probabilities=True)
        return gate(masks, probabilities)
