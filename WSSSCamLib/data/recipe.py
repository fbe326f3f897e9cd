"""How volumes become classifier input: the slice recipe, and a whole dataset read that way.

A :class:`SliceRecipe` is recorded in every model card, so training, the study, ``wssscam predict``
and the Slicer panel all cut and normalise volumes the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from .datasets import Dataset, load_case
from .slices import SliceSet, extract_slices
from .transforms import DEFAULT_CLIP_PERCENTILES, Compose, PercentileClip, ZScore

DEFAULT_INPUT_SIZE = 96
"""Side of the square classifier input slices, in pixels, when a recipe does not say."""


@dataclass
class SliceRecipe:
    """How volumes become classifier input: per-channel percentile clip and z-score of non-zero voxels
    (per case), slices along ``axis`` resized to ``size`` x ``size``, optional 2.5D context channel."""

    size: int = DEFAULT_INPUT_SIZE
    axis: str = "K"
    clip_percentiles: tuple[float, float] = DEFAULT_CLIP_PERCENTILES
    context_channel: int | None = None

    def normalisation(self) -> str:
        """The recipe's intensity normalisation in words (recorded in the model card)."""
        low, high = self.clip_percentiles
        return f"per case and channel: clip to [{low}, {high}] percentiles of non-zero voxels, then z-score of non-zero voxels"

    @classmethod
    def from_card(cls, card) -> SliceRecipe:
        """The recipe a model card (:class:`~WSSSCamLib.models.card.ModelCard`) records (cards without one: its
        input size and slice axis, defaults otherwise)."""
        if card.recipe:
            values = dict(card.recipe)
            values["clip_percentiles"] = tuple(values.get("clip_percentiles", DEFAULT_CLIP_PERCENTILES))
            return cls(**values)
        return cls(size=card.input_size[0] if card.input_size else DEFAULT_INPUT_SIZE, axis=card.slice_axis)

    def preprocess(self) -> Compose:
        """The intensity transforms of this recipe (per case and channel)."""
        return Compose([PercentileClip(*self.clip_percentiles), ZScore()])


def dataset_slices(dataset: Dataset, recipe: SliceRecipe, progress: bool = True) -> SliceSet:
    """Read, normalise and slice every case of ``dataset`` (labels from masks, else case labels)."""
    preprocess = recipe.preprocess()
    parts = []
    cases = dataset.cases
    if progress:
        from tqdm.auto import tqdm

        cases = tqdm(cases, desc="reading cases", unit="case", leave=False)
    for case in cases:
        loaded = load_case(case)
        image, mask = preprocess(loaded.image, loaded.mask)
        parts.append(
            extract_slices(
                case.case_id, image, mask, recipe.axis, case.label, (recipe.size, recipe.size), recipe.context_channel
            )
        )
    return SliceSet.concatenate(parts)
