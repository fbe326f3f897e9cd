"""Pseudo-labels for a segmentation network: per fold, masks of the fold's TRAINING cases from a CAM
configuration chosen on those training cases (the study key ``segmentation``; the ``segment`` stage).

Source (``segmentation.source``, parsed by :func:`~WSSSCamLib.study.config.parse_source`), resolved per fold
by :func:`choose_source` from the training rows (role ``train``) of that fold only - no held-out row, and no
other fold's training row (which would hold this fold's held-out cases), is read:

* ``best`` / ``best-refined``: the report's honest rule (:func:`~WSSSCamLib.report.honest.best_configurations`)
  applied to the fold's training scores: the best CAM (single maps and ensembles) or the best refined CAM;
  configurations tied there: the first in the rule's order (single maps before ensembles, configuration
  order);
* ``<model>/<method>``: a single map, its threshold rule chosen on the fold's training cases
  (``train-threshold``); ``<model>/<method>@<rule>``: a named rule (``p95``, ``otsu``, ``t=0.40``);
* an ensemble's name: its member thresholds from the fold's training-case grid search (``train-grid``), or
  ``@t=a|t=b``;
* ``<model>/<method> + <steps>``: a refined configuration, its threshold chosen on the training cases, or ``@rule``;
* a list of the above: each is resolved as above (:func:`choose_sources`), its labels are made (below), and the
  candidate whose labels agree best with the training cases' masks is used (:func:`pick_labels`: the highest
  mean Dice over every training slice with abnormality, a dropped slice counting 0; the same training masks every
  threshold choice reads).

Masks (:func:`source_masks`) are exactly what the study counts for that configuration (the same functions:
:func:`~WSSSCamLib.masks.apply_threshold` with ``empty_when_negative``'s gate, :func:`~WSSSCamLib.masks.ensemble_mask`,
:func:`~WSSSCamLib.study.refined.refined_masks`), on each slice's native grid, from the fold's classifier maps.

Labels (:func:`label_slices`), per slice, uint8: 0 background, 1 abnormal, 255 ignored:

* a slice whose image-level label is negative (no reference voxel: image-level labels are known for training
  cases in WSSS) is all background (0), whatever the map says; no pixel of it is ignored;
* on a positive slice, the mask is the label, and with ``ignore_band`` > 0 every pixel whose map value lies
  within +-band of its cut (``|value - cut| <= band``) is 255: a single map's value against its rule's cut
  (per slice for percentile / mean / median / Otsu; adaptive rules have no single cut and refuse a band); an
  ensemble's members each against their own threshold (a pixel is ignored when any member is within the band;
  ``mean``: the mean map against its threshold); a refined configuration's member map against the threshold
  applied before the refinement steps; a U-Net's p(abnormal) against 0.5 (self-training);
* ``filter`` drops a positive slice (it does not train at all) when its classifier probability (the source
  model's; an ensemble's: the mean over its models) is below ``min_probability``, or when the fraction of its
  pixels labelled 1 is outside [``min_area``, ``max_area``]; :class:`LabelCounts` says how many were dropped.

The labels are made on the native grid and resized to the U-Net's ``size`` x ``size`` grid by nearest
neighbour (:func:`labels_to_grid`); the reference masks of the supervised upper bound take the same path.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

import pandas as pd
import torch
import torch.nn.functional as F

from ..data.datasets import load_case
from ..data.recipe import SliceRecipe
from ..devices import resolve_device
from ..errors import InvalidInputError
from ..inference.segmentation import segment_slices
from ..masks import Threshold, apply_threshold, classifier_positive, ensemble_mask, suppress_negatives, threshold_cuts
from ..metrics.confusion import confusion_counts, dice_from_counts
from ..refine import Pipeline
from ..report.honest import best_configurations
from ..training.segmentation import CLASS_NAMES, IGNORE
from . import aggregate
from .config import SegmentationFilterSpec, SourceSpec, StudyConfig, parse_source
from .context import StudyContext
from .refined import RefinedConfiguration, parse_refined_method, refined_masks
from .units import CaseSlices, Timings, case_slices, compute_maps


@dataclass(frozen=True)
class SourceChoice:
    """The pseudo-label source of one fold: ``kind`` threshold | ensemble | refined; ``model`` / ``method`` its
    row labels in the study tables; ``members`` the (model, method) maps it reads; ``rule`` an ensemble's rule;
    ``thresholds`` one per member (threshold / refined: one); ``steps`` a refined configuration's pipeline."""

    kind: str
    model: str
    method: str
    members: tuple[tuple[str, str], ...]
    thresholds: tuple[Threshold, ...]
    rule: str | None = None
    steps: Pipeline | None = None
    chosen_by: str = ""

    def describe(self) -> str:
        """One line naming the configuration and its threshold(s), e.g. ``threshold a / grad-cam at p95``."""
        cuts = "|".join(t.name for t in self.thresholds)
        label = self.model if self.kind == "ensemble" else f"{self.model} / {self.method}"
        return f"{self.kind} {label} at {cuts}" + (f" ({self.chosen_by})" if self.chosen_by else "")


def fold_training_rows(slices: pd.DataFrame, fold: int) -> pd.DataFrame:
    """The unit rows that may choose fold ``fold``'s source: role ``train`` of that fold only."""
    return slices[(slices["role"] == "train") & (slices["fold"] == fold)]


def _source_specs(config: StudyConfig) -> list[tuple[str, SourceSpec]]:
    """Each listed ``segmentation.source`` with its parsed form, in the configuration's order."""
    models = {m.name: m for m in config.models}
    where = "segmentation.source"
    return [
        (text, parse_source(text, models, config.methods, config.ensembles, config.refinements, where))
        for text in config.segmentation.sources()
    ]


def needs_units(config: StudyConfig) -> bool:
    """Whether a source is chosen from training-case results (else named rules need no unit)."""
    return any(spec.rule is None for _, spec in _source_specs(config))


def choose_sources(config: StudyConfig, training_rows: pd.DataFrame | None, fold: int) -> list[SourceChoice]:
    """Fold ``fold``'s candidate pseudo-label sources, one per listed ``segmentation.source`` (see the module
    docstring), from ``training_rows``: the unit rows of role ``train`` of that fold (other rows are dropped here);
    None is enough when every source is a named rule. With several candidates, :func:`pick_labels` chooses."""
    return [_choose(config, text, spec, training_rows, fold) for text, spec in _source_specs(config)]


def choose_source(config: StudyConfig, training_rows: pd.DataFrame | None, fold: int) -> SourceChoice:
    """The source of a configuration that lists one (:func:`choose_sources`)."""
    choices = choose_sources(config, training_rows, fold)
    if len(choices) != 1:
        raise ValueError(f"segmentation.source lists {len(choices)} candidates; use choose_sources")
    return choices[0]


def _choose(
    config: StudyConfig, text: str, spec: SourceSpec, training_rows: pd.DataFrame | None, fold: int
) -> SourceChoice:
    ensembles = {e.name: e for e in config.ensembles}
    if spec.rule is not None:  # named: no training rows needed
        if spec.kind == "ensemble":
            ensemble = ensembles[spec.ensemble]
            cuts = tuple(Threshold.parse(t) for t in spec.rule.split("|"))
            return SourceChoice(
                "ensemble",
                spec.ensemble,
                "ensemble",
                tuple(ensemble.members),
                cuts,
                ensemble.rule,
                chosen_by="named",
            )
        return _single(spec.kind, spec.member, spec.steps, spec.rule, "named")
    if training_rows is None or training_rows.empty:
        raise InvalidInputError(
            f"segmentation.source '{text}': fold {fold} has no finished training units; run the 'cams' stage first"
        )
    train = fold_training_rows(training_rows, fold)
    grid = aggregate.grid_search_table(train)
    thresholds = aggregate.training_threshold_table(train)
    if spec.kind in ("best", "best-refined"):
        scores = aggregate.training_scores(train, grid, thresholds)
        best = best_configurations(scores, refined=spec.kind == "best-refined")
        if best.empty:
            raise InvalidInputError(
                f"segmentation.source '{spec.kind}': fold {fold} has no "
                f"{'refined ' if spec.kind == 'best-refined' else ''}configuration with a training-case score"
            )
        top = best.iloc[0]
        how = f"{spec.kind} on fold {fold}'s training cases"
        if top["kind"] == "ensemble":
            return _ensemble_choice(config, ensembles[top["model"]], grid, fold, how)
        if top["kind"] == "refined":
            method, steps = parse_refined_method(top["method"])
            return _chosen_single("refined", (top["model"], method), steps.describe(), thresholds, fold, how)
        return _chosen_single("threshold", (top["model"], top["method"]), None, thresholds, fold, how)
    how = f"chosen on fold {fold}'s training cases"
    if spec.kind == "ensemble":
        return _ensemble_choice(config, ensembles[spec.ensemble], grid, fold, how)
    return _chosen_single(spec.kind, spec.member, spec.steps, thresholds, fold, how)


def _single(kind: str, member: tuple[str, str], steps: str | None, rule: str, how: str) -> SourceChoice:
    pipeline = Pipeline.parse(steps) if steps else None
    method = member[1] if pipeline is None else f"{member[1]} + {pipeline.describe()}"
    return SourceChoice(kind, member[0], method, (member,), (Threshold.parse(rule),), steps=pipeline, chosen_by=how)


def _chosen_single(
    kind: str, member: tuple[str, str], steps: str | None, thresholds: pd.DataFrame, fold: int, how: str
) -> SourceChoice:
    method = member[1] if steps is None else f"{member[1]} + {steps}"
    rows = thresholds[(thresholds["model"] == member[0]) & (thresholds["method"] == method)]
    rows = rows[rows["kind"] == kind]
    if rows.empty:
        raise InvalidInputError(
            f"segmentation.source: fold {fold}'s training units hold no {kind} rows of {member[0]}/{method}"
        )
    return _single(kind, member, steps, str(rows["threshold"].iloc[0]), how)


def _ensemble_choice(config: StudyConfig, ensemble, grid: pd.DataFrame, fold: int, how: str) -> SourceChoice:
    rows = grid[(grid["ensemble"] == ensemble.name) & grid["chosen"].astype(bool)] if not grid.empty else grid
    if rows.empty:
        raise InvalidInputError(f"segmentation.source: fold {fold}'s training units hold no grid of {ensemble.name}")
    cuts = tuple(Threshold.parse(t) for t in str(rows["result"].iloc[0]).split("|"))
    return SourceChoice(
        "ensemble", ensemble.name, "ensemble", tuple(ensemble.members), cuts, ensemble.rule, chosen_by=how
    )


@dataclass
class SourceMasks:
    """A source's masks on one case: ``masks`` N x H x W bool; ``values`` / ``cuts``: the map(s) and their
    per-slice cuts (N) whose +-band is ignored (``cuts`` None: no single cut, e.g. adaptive); ``probability``:
    the source classifier's positive-class probability per slice (N)."""

    masks: torch.Tensor
    values: list[torch.Tensor]
    cuts: list[torch.Tensor | None]
    probability: torch.Tensor


def _cuts(maps: torch.Tensor, threshold: Threshold) -> torch.Tensor | None:
    return None if threshold.mode == "adaptive" else threshold_cuts(maps, threshold)


def source_masks(
    choice: SourceChoice,
    case: CaseSlices,
    maps: dict[tuple[str, str], torch.Tensor],
    probabilities: dict[str, torch.Tensor],
    empty_when_negative: bool,
    shared: dict[tuple, dict] | None = None,
) -> SourceMasks:
    """The masks the study counts for ``choice`` on ``case`` (maps: (model, method) -> N x H x W in [0, 1] at
    native size; probabilities: model -> N), with the values and cuts of the ignore band. ``shared``: one per case,
    (member, threshold) -> the refinement steps already computed, so candidate sources that share leading steps
    compute them once."""
    if choice.kind == "ensemble":
        member_maps = [maps[m] for m in choice.members]
        models = list(dict.fromkeys(model for model, _ in choice.members))
        probability = torch.stack([probabilities[m].float() for m in models]).mean(0)
        masks = ensemble_mask(member_maps, choice.rule, [t.value for t in choice.thresholds])
        if choice.rule == "mean":
            mean = torch.stack(member_maps).mean(0)
            values, cuts = [mean], [_cuts(mean, choice.thresholds[0])]
        else:
            values, cuts = member_maps, [_cuts(m, t) for m, t in zip(member_maps, choice.thresholds)]
        return SourceMasks(masks, values, cuts, probability)
    member = choice.members[0]
    m, probability = maps[member], probabilities[member[0]]
    threshold = choice.thresholds[0]
    if choice.kind == "refined":
        configuration = RefinedConfiguration(member[0], member[1], threshold, choice.steps)
        done = None if shared is None else shared.setdefault((member, threshold.name), {})
        masks = refined_masks(case, m, probability, configuration, empty_when_negative, done)
    else:
        masks = apply_threshold(m, threshold)
        if empty_when_negative:
            masks = suppress_negatives(masks, classifier_positive(probability))
    return SourceMasks(masks, [m], [_cuts(m, threshold)], probability)


def uncertain_pixels(values: list[torch.Tensor], cuts: list[torch.Tensor | None], band: float) -> torch.Tensor:
    """Pixels (N x H x W bool) where any of ``values`` (each N x H x W) lies within +-``band`` of its per-slice
    cut (N); all False for ``band`` 0. A value without a cut (adaptive rule) and a band > 0 is refused."""
    uncertain = torch.zeros_like(values[0], dtype=torch.bool)
    if band <= 0:
        return uncertain
    for value, cut in zip(values, cuts):
        if cut is None:
            raise InvalidInputError(
                "segmentation.ignore_band: an adaptive threshold has no single cut per slice; use ignore_band 0 "
                "or another rule"
            )
        uncertain |= (value.double() - cut.double().view(-1, *([1] * (value.ndim - 1)))).abs() <= band
    return uncertain


@dataclass
class LabelCounts:
    """What :func:`label_slices` made: slices in, negative slices (all background), positive slices kept,
    dropped for the classifier probability, dropped for the area, and the ignored share of the kept pixels."""

    slices: int = 0
    negative: int = 0
    positive_kept: int = 0
    dropped_probability: int = 0
    dropped_area: int = 0
    ignored_pixels: int = 0
    kept_pixels: int = 0

    def add(self, other: LabelCounts) -> LabelCounts:
        return LabelCounts(**{k: v + getattr(other, k) for k, v in asdict(self).items()})

    def to_dict(self) -> dict:
        data = asdict(self)
        data["ignored_fraction"] = self.ignored_pixels / self.kept_pixels if self.kept_pixels else 0.0
        return data


def label_slices(
    masks: torch.Tensor,
    uncertain: torch.Tensor,
    slice_labels: torch.Tensor,
    probability: torch.Tensor,
    rule: SegmentationFilterSpec,
) -> tuple[torch.Tensor, torch.Tensor, LabelCounts]:
    """(labels N x H x W uint8 - 0, 1 or :data:`IGNORE` -, keep N bool, counts) from masks and uncertain pixels
    (N x H x W bool), image-level slice labels (N, > 0 positive) and the classifier's probability (N); see the
    module docstring. A probability check: ``probability < min_probability``; area: the fraction of the
    slice's pixels labelled 1, outside [``min_area``, ``max_area``]."""
    positive = (slice_labels > 0).to(masks.device)
    labels = masks.to(torch.uint8)
    labels[uncertain] = IGNORE
    labels[~positive] = 0
    area = (labels == 1).flatten(1).float().mean(1)
    low_probability = positive & (probability.to(masks.device).float() < rule.min_probability)
    bad_area = positive & ~low_probability & ((area < rule.min_area) | (area > rule.max_area))
    keep = ~(low_probability | bad_area)
    counts = LabelCounts(
        slices=int(len(labels)),
        negative=int((~positive).sum()),
        positive_kept=int((positive & keep).sum()),
        dropped_probability=int(low_probability.sum()),
        dropped_area=int(bad_area.sum()),
        ignored_pixels=int((labels[keep] == IGNORE).sum()),
        kept_pixels=int(labels[keep].numel()),
    )
    return labels, keep, counts


def label_quality(labels: torch.Tensor, reference: torch.Tensor) -> dict[str, float]:
    """How well training labels (N x H x W uint8: 0, 1, :data:`IGNORE`) match the reference masks of the same
    slices (N x H x W, > 0 abnormal) on the pixels they label (ignored ones left out), on the U-Net's grid:
    ``fg_dice`` pooled over the slices (2TP / (2TP + FP + FN); NaN when both are empty everywhere) and
    ``dice_abnormal``, the mean Dice over the slices whose reference has abnormality on labelled pixels (NaN
    without such slices); NaN for no slice.
    A diagnostic of the pseudo-labels against the training cases' masks (:func:`pick_labels` chooses by
    :func:`selection_dice`, on the same slices for every candidate)."""
    if labels.shape[0] == 0:
        return {"fg_dice": float("nan"), "dice_abnormal": float("nan"), "abnormal_slices": 0}
    labelled = labels != IGNORE  # ignored pixels count as neither label nor reference: they only add TN
    counts = confusion_counts((labels == 1) & labelled, (reference > 0) & labelled)
    abnormal = counts[:, 0] + counts[:, 2] > 0  # abnormality on labelled pixels (a lesion all ignored: not counted)
    pooled = counts.sum(0)
    return {
        "fg_dice": float(dice_from_counts(pooled, empty=float("nan"))),
        "dice_abnormal": float(dice_from_counts(counts[abnormal]).mean()) if bool(abnormal.any()) else float("nan"),
        "abnormal_slices": int(abnormal.sum()),
    }


def labels_to_grid(labels: torch.Tensor, size: int) -> torch.Tensor:
    """Labels N x H x W (uint8, or bool) resized to N x size x size by nearest neighbour (``nearest-exact``:
    pixel centres), values unchanged; uint8."""
    labels = labels.to(torch.uint8)
    if tuple(labels.shape[1:]) == (size, size):
        return labels
    return F.interpolate(labels[:, None].float(), size=(size, size), mode="nearest-exact")[:, 0].to(torch.uint8)


@dataclass
class CandidateLabels:
    """One candidate source's labels of a fold's training slices on the U-Net grid: ``pseudo`` N x size x size
    uint8, ``keep`` N bool, ``probability`` N (its classifier's), ``counts``."""

    choice: SourceChoice
    pseudo: torch.Tensor
    keep: torch.Tensor
    probability: torch.Tensor
    counts: LabelCounts


def selection_dice(labels: torch.Tensor, keep: torch.Tensor, reference: torch.Tensor) -> float:
    """The score :func:`pick_labels` compares: the mean Dice over EVERY training slice whose reference has
    abnormality (the same slices for every candidate) of the labels (N x H x W: 0, 1, :data:`IGNORE`) against the
    reference (N x H x W, > 0 abnormal), a slice the candidate drops (``keep`` False) counting 0 and an ignored
    pixel counting as background (so no candidate gains by dropping or ignoring what it gets wrong); NaN without
    such a slice."""
    abnormal = (reference > 0).flatten(1).any(1)
    if not bool(abnormal.any()):
        return float("nan")
    dice = dice_from_counts(confusion_counts(labels[abnormal] == 1, reference[abnormal] > 0))
    return float(torch.where(keep[abnormal].to(dice.device), dice, torch.zeros_like(dice)).mean())


def pick_labels(candidates: list[CandidateLabels], reference: torch.Tensor) -> tuple[int, list[dict]]:
    """The candidate whose labels agree best with the training cases' masks (``reference`` N x size x size): the
    highest :func:`selection_dice` (NaN: lowest; ties: the first listed), and one summary per candidate (source,
    label counts, ``selection_dice``, the :func:`label_quality` diagnostic on its kept slices, chosen). Negative
    slices are empty for every candidate (their image-level label), so the lesion slices are where candidates
    differ. Uses the training cases' masks only, like every threshold choice of the study."""
    summaries = []
    for candidate in candidates:
        quality = label_quality(candidate.pseudo[candidate.keep], reference[candidate.keep])
        score = selection_dice(candidate.pseudo, candidate.keep, reference)
        summaries.append(
            {"source": candidate.choice.describe(), **candidate.counts.to_dict(), "selection_dice": score, **quality}
        )
    scores = [q["selection_dice"] for q in summaries]
    ranked = [float("-inf") if score != score else score for score in scores]  # NaN lowest
    best = max(range(len(ranked)), key=lambda i: (ranked[i], -i))
    for index, summary in enumerate(summaries):
        summary["chosen"] = index == best
    return best, summaries


@dataclass
class TrainingSlices:
    """A fold's training slices for the U-Nets, on the ``size`` grid: ``images`` N x C x size x size,
    ``reference`` N x size x size uint8 (the masks, for the supervised network), ``slice_labels`` N (image-level),
    ``probability`` N (the source classifier's; NaN without a source), ``pseudo`` N x size x size uint8 and
    ``keep`` N bool (None without a source), ``counts``, ``case_ids``, ``slice_index``; ``choice`` the source
    (among several candidates: the one :func:`pick_labels` chose) and ``candidates`` one summary per candidate."""

    images: torch.Tensor
    reference: torch.Tensor
    slice_labels: torch.Tensor
    probability: torch.Tensor
    case_ids: list[str]
    slice_index: torch.Tensor
    pseudo: torch.Tensor | None = None
    keep: torch.Tensor | None = None
    counts: LabelCounts = field(default_factory=LabelCounts)
    choice: SourceChoice | None = None
    candidates: list[dict] = field(default_factory=list)


def network_recipe(context: StudyContext) -> SliceRecipe:
    """The U-Nets' slice recipe: the study's, with ``segmentation.size`` as the input side."""
    if not isinstance(context.recipe, SliceRecipe):
        raise InvalidInputError(f"{context.config.source}: segmentation needs a slice recipe (not a volume recipe)")
    return replace(context.recipe, size=context.config.segmentation.size)


def fold_training_slices(
    context: StudyContext,
    fold: int,
    choices: SourceChoice | list[SourceChoice] | None,
    device: torch.device | None = None,
) -> TrainingSlices:
    """Read fold ``fold``'s TRAINING cases only (``folds.training(fold)``) and make their U-Net input, reference
    labels and, with ``choices`` (one source or candidates), their pseudo-labels from the fold's classifier maps
    (see the module docstring); among several candidates :func:`pick_labels` chooses."""
    config, spec = context.config, context.config.segmentation
    device = device or resolve_device(config.device)
    recipe = network_recipe(context)
    choices = [choices] if isinstance(choices, SourceChoice) else list(choices or [])
    members = {member for choice in choices for member in choice.members}
    models = context.fold_models(fold, device) if choices else []
    parts: dict[str, list] = {k: [] for k in ("images", "reference", "labels")}
    made_labels: list[dict[str, list]] = [{k: [] for k in ("pseudo", "keep", "probability")} for _ in choices]
    counts = [LabelCounts() for _ in choices]
    case_ids: list[str] = []
    slice_index: list[torch.Tensor] = []
    by_id = {c.case_id: c for c in context.dataset.cases}
    for case_id in context.folds.training(fold):
        case = by_id[case_id]
        loaded = load_case(case)
        image, mask = recipe.preprocess()(loaded.image, loaded.mask)
        if mask is None:
            raise InvalidInputError(f"case '{case_id}' has no reference mask: the segment stage needs slice labels")
        inputs = recipe.items(case_id, image, mask, case.label)
        reference = recipe.native_reference(loaded.mask)
        parts["images"].append(inputs.images)
        parts["reference"].append(labels_to_grid(reference, recipe.size))
        parts["labels"].append(inputs.labels)
        case_ids += inputs.case_ids
        slice_index.append(inputs.slice_index)
        if not choices:
            continue
        slices = case_slices(case, loaded, context.recipe)
        maps, probabilities = compute_maps(slices, models, config.batch_size, device, Timings(), only=members)
        shared: dict[tuple, dict] = {}
        for index, choice in enumerate(choices):
            made = source_masks(choice, slices, maps, probabilities, config.empty_when_negative, shared)
            uncertain = uncertain_pixels(made.values, made.cuts, spec.ignore_band)
            labels, keep, case_counts = label_slices(
                made.masks, uncertain, inputs.labels, made.probability, spec.filter
            )
            made_labels[index]["pseudo"].append(labels_to_grid(labels.cpu(), recipe.size))
            made_labels[index]["keep"].append(keep.cpu())
            made_labels[index]["probability"].append(made.probability.float().cpu())
            counts[index] = counts[index].add(case_counts)
    data = TrainingSlices(
        images=torch.cat(parts["images"]),
        reference=torch.cat(parts["reference"]),
        slice_labels=torch.cat(parts["labels"]),
        probability=torch.full((len(case_ids),), float("nan")),
        case_ids=case_ids,
        slice_index=torch.cat(slice_index),
    )
    if not choices:
        return data
    candidates = [
        CandidateLabels(choice, *(torch.cat(made[k]) for k in ("pseudo", "keep", "probability")), count)
        for choice, made, count in zip(choices, made_labels, counts)
    ]
    best, data.candidates = pick_labels(candidates, data.reference)
    chosen = candidates[best]
    data.pseudo, data.keep, data.probability = chosen.pseudo, chosen.keep, chosen.probability
    data.counts, data.choice = chosen.counts, chosen.choice
    return data


def self_training_labels(
    model: torch.nn.Module,
    data: TrainingSlices,
    spec_band: float,
    rule: SegmentationFilterSpec,
    device: torch.device,
    depth: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor, LabelCounts]:
    """Pseudo-labels of one self-training round: the U-Net's own segmentation of the training slices at its
    input grid (argmax; band: p(abnormal) within +-band of 0.5; a 3D U-Net, window ``depth``, over each case's
    stack), with the same negative-slice, ignore and filter rules as the first round (probability: the source
    classifier's)."""
    size = tuple(data.images.shape[2:])
    model = model.to(device).eval()
    stacks = case_ranges(data.case_ids) if depth is not None else [slice(0, len(data.images))]
    parts = [segment_slices(model, data.images[part], size, len(CLASS_NAMES), 32, depth) for part in stacks]
    p, m = torch.cat([p for p, _ in parts]), torch.cat([m for _, m in parts])
    uncertain = uncertain_pixels([p], [torch.full((len(p),), 0.5)], spec_band)
    return label_slices(m, uncertain, data.slice_labels, data.probability, rule)


def case_ranges(case_ids: list[str]) -> list[slice]:
    """The runs of equal consecutive ``case_ids`` (each case's slices, in order) as slices of the slice axis."""
    ranges, start = [], 0
    for index in range(1, len(case_ids) + 1):
        if index == len(case_ids) or case_ids[index] != case_ids[start]:
            ranges.append(slice(start, index))
            start = index
    return ranges


__all__ = [
    "CandidateLabels",
    "LabelCounts",
    "case_ranges",
    "SourceChoice",
    "SourceMasks",
    "TrainingSlices",
    "choose_source",
    "choose_sources",
    "fold_training_rows",
    "fold_training_slices",
    "label_slices",
    "labels_to_grid",
    "needs_units",
    "network_recipe",
    "pick_labels",
    "selection_dice",
    "self_training_labels",
    "source_masks",
    "uncertain_pixels",
]
