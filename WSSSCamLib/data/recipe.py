"""How volumes become classifier input: the slice recipe, and a whole dataset read that way.

A :class:`SliceRecipe` (2D slices) or a :class:`~WSSSCamLib.data.volume_recipe.VolumeRecipe` (3D slabs or
whole volumes) is recorded in every model card, so training, the study, ``wssscam predict`` and the Slicer
panel all cut and normalise volumes the same way. Both offer ``items`` (a case's classifier input as a
:class:`SliceSet`), ``native_reference`` (its mask per item at native resolution), ``input_size`` and
``spatial_dims``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import InvalidInputError
from .datasets import Dataset, load_case
from .slices import SLICE_AXES, SliceSet, extract_slices
from .transforms import DEFAULT_CLIP_PERCENTILES, Compose
from .volume import Volume
from .volume_recipe import VolumeRecipe, case_normalisation, normalisation_text

DEFAULT_INPUT_SIZE = 96
"""Side of the square classifier input slices, in pixels, when a recipe does not say."""


def input_channel_names(channel_names: Sequence[str], context_channel: int | None) -> list[str]:
    """The network input's channel names: the dataset's, then, for a 2.5D recipe, its context channel's
    previous and next slices (the order :func:`~WSSSCamLib.data.slices.extract_slices` stacks them in)."""
    names = list(channel_names)
    if context_channel is not None:
        name = names[context_channel]
        names += [f"{name} (previous slice)", f"{name} (next slice)"]
    return names


@dataclass
class SliceRecipe:
    """How volumes become classifier input: per-channel percentile clip and z-score of non-zero voxels
    (per case), slices along ``axis`` resized to ``size`` x ``size``, optional 2.5D context channel."""

    size: int = DEFAULT_INPUT_SIZE
    axis: str = "K"
    clip_percentiles: tuple[float, float] = DEFAULT_CLIP_PERCENTILES
    context_channel: int | None = None

    spatial_dims = 2
    """Spatial dimensions of the classifier input (a class attribute, not a field)."""

    @property
    def input_size(self) -> list[int]:
        """The network's input size [H, W] (recorded in the model card)."""
        return [self.size, self.size]

    def normalisation(self) -> str:
        """The recipe's intensity normalisation in words (recorded in the model card)."""
        return normalisation_text(self.clip_percentiles)

    def items(self, case_id: str, image: Volume, mask: Volume | None = None, case_label: int | None = None) -> SliceSet:
        """The case's classifier input slices (:func:`~WSSSCamLib.data.slices.extract_slices`)."""
        return extract_slices(case_id, image, mask, self.axis, case_label, (self.size, self.size), self.context_channel)

    def native_reference(self, mask: Volume) -> torch.Tensor:
        """The reference of each slice at native resolution: N x H x W bool (slices along the axis)."""
        return torch.from_numpy(np.ascontiguousarray(np.moveaxis(mask.array, SLICE_AXES[self.axis], 0)) > 0)

    def native_slice_index(self, item: int, offset: int, depth: int) -> int:
        """Index along the axis of item ``item`` (a slice: ``offset`` is 0)."""
        return item + offset

    @classmethod
    def from_card(cls, card) -> SliceRecipe:
        """The recipe a model card (:class:`~WSSSCamLib.models.card.ModelCard`) records (cards without one: its
        input size and slice axis, defaults otherwise)."""
        if card.recipe and card.recipe.get("kind") == "volume":
            raise InvalidInputError(
                f"model card of {card.architecture}: trained on 3D slabs/volumes (recipe kind 'volume'); "
                "read it with recipe_from_card"
            )
        if card.recipe:
            values = dict(card.recipe)
            values["clip_percentiles"] = tuple(values.get("clip_percentiles", DEFAULT_CLIP_PERCENTILES))
            return cls(**values)
        return cls(size=card.input_size[0] if card.input_size else DEFAULT_INPUT_SIZE, axis=card.slice_axis)

    def preprocess(self) -> Compose:
        """The intensity transforms of this recipe (per case and channel)."""
        return case_normalisation(self.clip_percentiles)


Recipe = SliceRecipe | VolumeRecipe
"""Either recipe kind."""


def recipe_from_card(card) -> Recipe:
    """The recipe a model card records: a :class:`VolumeRecipe` for ``kind: volume``, else a :class:`SliceRecipe`
    (:meth:`SliceRecipe.from_card`)."""
    if card.recipe and card.recipe.get("kind") == "volume":
        return VolumeRecipe.from_values(dict(card.recipe))
    return SliceRecipe.from_card(card)


def dataset_slices(dataset: Dataset, recipe: Recipe, progress: bool = True) -> SliceSet:
    """Read, normalise and cut every case of ``dataset`` into the recipe's items (labels from masks, else case labels)."""
    preprocess = recipe.preprocess()
    parts = []
    cases = dataset.cases
    if progress:
        from tqdm.auto import tqdm

        cases = tqdm(cases, desc="reading cases", unit="case", leave=False)
    for case in cases:
        loaded = load_case(case)
        image, mask = preprocess(loaded.image, loaded.mask)
        parts.append(recipe.items(case.case_id, image, mask, case.label))
    return SliceSet.concatenate(parts)
