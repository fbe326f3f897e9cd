"""Refined CAMs in a study: a member map, thresholded by a rule, then refined by a pipeline of steps
(:mod:`WSSSCamLib.refine`), counted like every other configuration (study key ``refinements``).

A refined configuration is (member map, steps): row labels model = the member's model, method =
``"<method> + <pipeline>"`` (e.g. ``"grad-cam + gate | felzenszwalb:scale=100,sigma=0.8,min_size=20,min_fraction=0.5"``,
the pipeline's canonical name, :meth:`~WSSSCamLib.refine.Pipeline.describe`), kind ``refined``, and its
rule, the result, is the threshold (``p95``, ``t=0.50``, ...). Held-out units count it per slice and
training units summed per case, so each fold chooses the threshold of every refined configuration on
its training cases exactly as for a single map (result ``train-threshold``), and the report's "best
refined CAM" is the refined configuration with the best mean training-case score (no test case
chooses anything).

Inputs of the steps, per slice at the reference's (native) resolution:

* masks: ``apply_threshold(map, rule)`` of the member's map (resized bilinearly to native size, as
  every study map);
* images: the slice's normalised intensities, every channel of the volume after the recipe's
  percentile clip and z-score (:attr:`~WSSSCamLib.study.units.CaseSlices.images`; no 2.5D context
  channels);
* probabilities: the member model's positive-class probability per slice (the gate's input).

With ``empty_when_negative`` the final mask is gated too (slices the classifier calls negative are
empty), as for the plain thresholds. Cost is bounded by members x thresholds x pipelines per unit,
and pipelines that share leading steps compute them once. Thresholding and ``gate`` run on the
maps' device; ``slic``, ``felzenszwalb``, ``random_walker``, ``crf`` and ``components`` run on the
CPU (scikit-image, cc3d, pydensecrf on NumPy copies) and their masks are moved back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch

from ..errors import InvalidInputError
from ..masks import Threshold, apply_threshold
from ..metrics import confusion_counts
from ..refine import Pipeline, RefinementError
from ..refine.components import gate
from .config import StudyConfig


class CaseSlices(Protocol):
    """What refinement reads of a case: :class:`WSSSCamLib.study.units.CaseSlices` (its id, and ``images``:
    the normalised intensities at native resolution, N x C x H x W float, or None)."""

    case_id: str
    images: torch.Tensor | None


KIND = "refined"
"""The ``kind`` of refined rows in the study tables."""
JOIN = " + "
"""Between the CAM method and the pipeline in a refined configuration's ``method`` label."""


@dataclass(frozen=True)
class RefinedConfiguration:
    """One refined candidate: ``model``'s ``method`` map, thresholded by ``threshold``, refined by ``steps``."""

    model: str
    method: str
    threshold: Threshold
    steps: Pipeline

    @property
    def label(self) -> str:
        """The ``method`` label of its rows: ``"<method> + <pipeline name>"``."""
        return refined_method(self.method, self.steps)

    @classmethod
    def from_row(cls, model: str, method: str, result: str) -> RefinedConfiguration:
        """From a study table row of kind ``refined`` (e.g. a fold's row of ``train_thresholds.csv`` or
        ``training_scores.csv``: model, method label, and the threshold rule as result/threshold)."""
        cam_method, steps = parse_refined_method(method)
        try:
            threshold = Threshold.parse(str(result))
        except ValueError as error:
            raise InvalidInputError(f"refined configuration {model} / {method}: result {result!r}: {error}") from None
        return cls(model, cam_method, threshold, steps)


def refined_method(method: str, steps: Pipeline) -> str:
    """The ``method`` label of a refined configuration: ``"<method> + <pipeline name>"``."""
    return f"{method}{JOIN}{steps.describe()}"


def parse_refined_method(label: str) -> tuple[str, Pipeline]:
    """(CAM method, pipeline) from a refined ``method`` label (inverse of :func:`refined_method`)."""
    method, join, steps = str(label).partition(JOIN)
    if not join or not method:
        raise InvalidInputError(f"refined configuration: method {label!r} is not '<method>{JOIN}<steps>'")
    try:
        return method, Pipeline.parse(steps)
    except RefinementError as error:
        raise InvalidInputError(f"refined configuration: method {label!r}: {error}") from None


def configurations(config: StudyConfig) -> list[RefinedConfiguration]:
    """Every refined candidate of the study (members x thresholds x steps of each ``refinements`` entry)."""
    return [
        RefinedConfiguration(model, method, threshold, steps)
        for spec in config.refinements
        for model, method in spec.members
        for threshold in spec.thresholds
        for steps in spec.steps
    ]


def _images_for(case: CaseSlices, pipelines: list[Pipeline], device: torch.device) -> torch.Tensor | None:
    """The case's normalised native images on ``device`` when one of ``pipelines`` reads images, else None."""
    reading = [steps.describe() for steps in pipelines if steps.needs_images]
    if not reading:
        return None
    if case.images is None:
        raise InvalidInputError(
            f"case '{case.case_id}': refinement '{reading[0]}' needs the slices' images (CaseSlices.images)"
        )
    return case.images.to(device)


def _apply_steps(
    masks: torch.Tensor,
    maps: torch.Tensor,
    images: torch.Tensor | None,
    probabilities: torch.Tensor,
    steps: Pipeline,
    done: dict[tuple, torch.Tensor],
) -> torch.Tensor:
    """``steps(masks, ...)``, reusing in ``done`` (leading steps -> masks) what earlier pipelines computed."""
    prefix: tuple = ()
    current = masks
    for step in steps.steps:
        key = (*prefix, step)
        if key not in done:
            done[key] = step(current, maps, images, probabilities)
        current, prefix = done[key], key
    return current


def refined_masks(
    case: CaseSlices,
    maps: torch.Tensor,
    probabilities: torch.Tensor,
    configuration: RefinedConfiguration,
    empty_when_negative: bool = False,
    done: dict[tuple, torch.Tensor] | None = None,
) -> torch.Tensor:
    """The masks of one refined configuration, N x H x W bool on the maps' device.

    ``case``: the case's slices (:func:`~WSSSCamLib.study.units.case_slices`; its ``images`` feed the
    appearance-based steps); ``maps``: the member's maps at native resolution, N x H x W float in [0, 1]
    (as :func:`~WSSSCamLib.study.units.compute_maps` gives them for (model, method)); ``probabilities``:
    the member model's positive-class probability per slice (N). ``empty_when_negative``: the study's
    key of that name (gates the final mask). This is what the study counts for that configuration.
    ``done``: leading steps -> masks already computed from the same maps and threshold (filled here), so that
    configurations sharing leading steps compute them once (as :func:`refined_rows` does).

    E.g. the refined configuration chosen on fold k's training cases (``training_scores.csv`` row of kind
    ``refined``: model, method, result = its threshold there)::

        configuration = RefinedConfiguration.from_row(row.model, row.method, row.result)
        case = read_case_slices(dataset_case, context.recipe)
        maps, probabilities = compute_maps(case, context.fold_models(k, device), 32, device, Timings())
        masks = refined_masks(case, maps[(configuration.model, configuration.method)],
                              probabilities[configuration.model], configuration, config.empty_when_negative)
    """
    masks = apply_threshold(maps, configuration.threshold)
    images = _images_for(case, [configuration.steps], maps.device)
    masks = _apply_steps(masks, maps, images, probabilities, configuration.steps, {} if done is None else done)
    return gate(masks, probabilities) if empty_when_negative else masks


def refined_rows(
    add: Callable[..., None],
    case: CaseSlices,
    maps: dict[tuple[str, str], torch.Tensor],
    probabilities: dict[str, torch.Tensor],
    reference: torch.Tensor,
    config: StudyConfig,
    summed: bool,
) -> None:
    """Count every refined candidate of ``config`` against ``reference`` (N x H x W bool) through ``add``
    (the units' row collector: model, method, result, kind, counts N x 4, probability, summed=...);
    per slice, or summed over the case with ``summed``. The thresholded mask of each (member, rule) and
    the shared leading steps of its pipelines are computed once."""
    for spec in config.refinements:
        images = _images_for(case, spec.steps, reference.device)
        for model, method in spec.members:
            m, probability = maps[(model, method)], probabilities[model]
            for threshold in spec.thresholds:
                masks, done = apply_threshold(m, threshold), {}
                for steps in spec.steps:
                    refined = _apply_steps(masks, m, images, probability, steps, done)
                    if config.empty_when_negative:
                        refined = gate(refined, probability)
                    counts = confusion_counts(refined, reference)
                    kept = None if summed else probability
                    add(model, refined_method(method, steps), threshold.name, KIND, counts, kept, summed=summed)


__all__ = [
    "JOIN",
    "KIND",
    "RefinedConfiguration",
    "configurations",
    "parse_refined_method",
    "refined_masks",
    "refined_method",
    "refined_rows",
]
