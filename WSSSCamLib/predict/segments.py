"""From CAM volumes to named segments: the same threshold, ensemble and negative-slice rules as the
study (:mod:`WSSSCamLib.masks`), applied slice by slice along the model's slicing axis.

Each CAM slice is min-max normalised on its own (the engine's convention), so every threshold mode
cuts per slice exactly as the study does (``apply_threshold`` on N x H x W slices); a K x J x I
volume is a stack of those slices along the recipe's axis.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import torch

from ..masks import (
    RULES,
    Threshold,
    apply_threshold,
    classifier_positive,
    combine_masks,
    mean_map_mask,
    suppress_negatives,
)
from ..refine import Pipeline

AXES = "KJI"


@dataclass(frozen=True)
class SegmentationRule:
    """How maps become segments.

    ``threshold``: the cut of every single map. ``ensemble``: a rule of :data:`~WSSSCamLib.masks.RULES`
    over all (model, method) members, or None. ``member_thresholds``: fixed per-member cuts for the
    ensemble (e.g. the ones a study chose on its training cases), default ``threshold`` for all;
    'mean' thresholds the mean map with one fixed t. ``empty_when_negative``: empty every slice whose
    target-class probability is not above 0.5 (``classifier_positive``); an ensemble slice is kept
    when the mean probability of the ensemble's models is above 0.5. ``refinement``: steps of
    :mod:`WSSSCamLib.refine` applied slice by slice to every segment afterwards (the ensemble's with
    the mean of its members' maps and probabilities); refined segments are named "... refined".
    """

    threshold: Threshold = Threshold("fixed", 0.5)
    ensemble: str | None = None
    member_thresholds: tuple[float, ...] | None = None
    empty_when_negative: bool = False
    refinement: Pipeline = field(default_factory=Pipeline)

    def __post_init__(self) -> None:
        if self.ensemble is not None and self.ensemble not in RULES:
            raise ValueError(f"ensemble: unknown rule {self.ensemble!r}; accepted rules {', '.join(RULES)}")
        if self.ensemble == "mean" and self.member_thresholds is None and self.threshold.mode != "fixed":
            raise ValueError(
                f"ensemble 'mean' thresholds the mean map with a fixed t; got threshold {self.threshold.name}"
            )
        if self.member_thresholds is not None:
            for t in self.member_thresholds:
                Threshold("fixed", t)  # each must be a valid fixed t in [0, 1]

    def describe(self) -> dict:
        """JSON-ready description (part of the output's fingerprint)."""
        return {
            "threshold": self.threshold.name,
            "ensemble": self.ensemble,
            "member_thresholds": list(self.member_thresholds) if self.member_thresholds else None,
            "empty_when_negative": self.empty_when_negative,
            **({"refinement": self.refinement.describe()} if self.refinement.steps else {}),
        }


def to_slices(volume: torch.Tensor, axis: str) -> torch.Tensor:
    """K x J x I -> N x H x W with the slicing ``axis`` ('K', 'J' or 'I') first."""
    return torch.movedim(volume, AXES.index(axis), 0)


def from_slices(slices: torch.Tensor, axis: str) -> torch.Tensor:
    """Inverse of :func:`to_slices`."""
    return torch.movedim(slices, 0, AXES.index(axis))


def slice_masks(maps: torch.Tensor, threshold: Threshold, positive: torch.Tensor | None = None) -> torch.Tensor:
    """Masks of N x H x W slice maps cut by ``threshold`` per slice; slices with ``positive`` False emptied."""
    masks = apply_threshold(maps.float(), threshold)
    return masks if positive is None else suppress_negatives(masks, positive)


def member_key(model: str, method: str, several_models: bool) -> str:
    """Segment/CAM name of one model's method: 'grad-cam', or 'resnet18 grad-cam' with several models."""
    return f"{model} {method}" if several_models else method


def network_segment_name(model: str) -> str:
    """Name of a segmentation network's own segment (its argmax, not a CAM): '<model> segmentation',
    always with the model's name."""
    return f"{model} segmentation"


@dataclass
class Segments:
    """``masks``: segment name -> K x J x I bool (CAM singles first, then the ensemble, then segmentation
    networks' own segments); ``members``: (model, method) -> the single CAM mask behind each single
    segment (for agreement tables)."""

    masks: dict[str, torch.Tensor]
    members: dict[tuple[str, str], torch.Tensor]


def segment_volumes(cams: Mapping[str, object], rule: SegmentationRule, images: torch.Tensor | None = None) -> Segments:
    """Segments of the CAMs of several models on one volume.

    ``cams``: model name -> :class:`~WSSSCamLib.inference.VolumeCams` (``maps`` method -> K x J x I
    in [0, 1], ``probabilities`` per slice along ``axis``). Single segments are named
    "<model method> <threshold>", the ensemble "<rule> ensemble <threshold or member thresholds>".
    ``images``: C x K x J x I normalised intensities on the same grid, for refinement steps that use them.
    """
    if rule.refinement.steps:
        return _refined(cams, rule, images)
    several = len(cams) > 1
    masks: dict[str, torch.Tensor] = {}
    members: dict[tuple[str, str], torch.Tensor] = {}
    slice_maps: dict[tuple[str, str], torch.Tensor] = {}
    positives: dict[str, torch.Tensor] = {}
    for model, result in cams.items():
        positive = classifier_positive(result.probabilities) if rule.empty_when_negative else None
        positives[model] = result.probabilities
        for method, volume in result.maps.items():
            maps = to_slices(volume, result.axis)
            mask = from_slices(slice_masks(maps, rule.threshold, positive), result.axis)
            members[(model, method)] = mask
            slice_maps[(model, method)] = maps
            masks[f"{member_key(model, method, several)} {rule.threshold.name}"] = mask
    if rule.ensemble and len(members) >= 2:
        name, mask = _ensemble(cams, slice_maps, positives, rule)
        masks[name] = mask
    return Segments(masks, members)


def _ensemble(
    cams: Mapping[str, object],
    slice_maps: dict[tuple[str, str], torch.Tensor],
    probabilities: dict[str, torch.Tensor],
    rule: SegmentationRule,
) -> tuple[str, torch.Tensor]:
    """The ensemble segment over every (model, method) member, computed on slices like the study."""
    axes = {cams[model].axis for model, _ in slice_maps}
    if len(axes) != 1:
        raise ValueError(f"an ensemble needs models that slice along one axis; these slice along {sorted(axes)}")
    axis = axes.pop()
    maps = list(slice_maps.values())
    if rule.member_thresholds is not None and rule.ensemble != "mean" and len(rule.member_thresholds) != len(maps):
        raise ValueError(
            f"member_thresholds: {len(rule.member_thresholds)} thresholds for {len(maps)} ensemble members "
            f"({', '.join(f'{a} {b}' for a, b in slice_maps)})"
        )
    if rule.ensemble == "mean":
        t = rule.member_thresholds[0] if rule.member_thresholds else rule.threshold.value
        combined, label = mean_map_mask(maps, t), Threshold("fixed", t).name
    else:
        cuts = (
            [Threshold("fixed", t) for t in rule.member_thresholds]
            if rule.member_thresholds
            else [rule.threshold] * len(maps)
        )
        combined = combine_masks([apply_threshold(m.float(), cut) for m, cut in zip(maps, cuts)], rule.ensemble)
        label = "|".join(cut.name for cut in cuts) if rule.member_thresholds else rule.threshold.name
    if rule.empty_when_negative:
        models = list(dict.fromkeys(model for model, _ in slice_maps))
        mean_probability = torch.stack([probabilities[m].float() for m in models]).mean(0)
        combined = suppress_negatives(combined, classifier_positive(mean_probability))
    return f"{rule.ensemble} ensemble {label}", from_slices(combined, axis)


def _refined(cams: Mapping[str, object], rule: SegmentationRule, images: torch.Tensor | None) -> Segments:
    """:func:`segment_volumes` without refinement, then every segment refined slice by slice."""
    plain = segment_volumes(cams, replace(rule, refinement=Pipeline()))
    several = len(cams) > 1
    names = {member: f"{member_key(*member, several)} {rule.threshold.name}" for member in plain.members}
    axis = next(iter(cams.values())).axis

    slices = torch.movedim(images, 1 + AXES.index(axis), 0).float() if images is not None else None  # N x C x H x W

    def refine(mask: torch.Tensor, maps: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
        refined = rule.refinement(to_slices(mask, axis), to_slices(maps.float(), axis), slices, probabilities.float())
        return from_slices(refined, axis)

    masks, members = {}, {}
    for (model, method), mask in plain.members.items():
        result = cams[model]
        members[(model, method)] = refine(mask, result.maps[method], result.probabilities)
        masks[f"{names[(model, method)]} refined"] = members[(model, method)]
    for name, mask in plain.masks.items():
        if name not in names.values():  # the ensemble: the mean of its members' maps and models' probabilities
            mean_map = torch.stack([cams[model].maps[method].float() for model, method in plain.members]).mean(0)
            mean_probability = torch.stack([cams[model].probabilities.float() for model in cams]).mean(0)
            masks[f"{name} refined"] = refine(mask, mean_map, mean_probability)
    return Segments(masks, members)
