"""One unit of study work: one case under one fold's models, from slices to per-slice count rows.

A unit is (case, fold). When the case is held out by the fold (role ``test``) the unit computes
every model x method map, thresholds them every configured way, combines ensemble members at
every threshold combination, and counts TP/FP/FN/TN per slice against the reference; it also
measures the agreement across methods and across models per slice. When the case trains the fold
(role ``train``) every model x method map is thresholded every configured way and every ensemble
combined at every threshold combination, with the counts summed over the case's slices: they feed
the fold's choices made on its training cases (the threshold rule of each single configuration, the
ensemble grid search, the best configuration). Both roles also count the study's refined CAMs
(kind ``refined``, :mod:`WSSSCamLib.study.refined`), only for the listed members, rules and steps.

Maps are compared with the reference at the slice's own (native) resolution: the network sees
``recipe.size`` x ``recipe.size`` slices, its maps are resized back bilinearly. With a volume recipe
(:class:`~WSSSCamLib.data.volume_recipe.VolumeRecipe`) every "slice" is a slab: its 3D map is resized back
trilinearly to the slab's native voxels and counted there.

Writing and reading units: :mod:`WSSSCamLib.study.unit_store`.
"""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..data.datasets import Case, LoadedCase, load_case
from ..data.recipe import Recipe, SliceRecipe
from ..data.slices import SLICE_AXES, SliceSet
from ..errors import InvalidInputError
from ..inference.volume_cams import slice_cams
from ..masks import (
    Threshold,
    apply_threshold,
    classifier_positive,
    ensemble_counts,
    fixed_threshold_counts,
    mean_dice_over_thresholds,
)
from ..metrics import confusion_counts, pairwise_iou_agreement_at_thresholds
from .config import StudyConfig
from .context import FoldModel
from .refined import refined_rows

SLICE_COLUMNS = [
    "case",
    "slice",
    "fold",
    "role",
    "model",
    "method",
    "result",
    "kind",
    "tp",
    "fp",
    "fn",
    "tn",
    "probability",
    "score",
]
AGREEMENT_COLUMNS = ["case", "slice", "fold", "kind", "group", "result", "value"]


@dataclass
class CaseSlices:
    """A case ready for the models: classifier input slices (N x C x size x size), the reference masks
    along the same axis at native resolution (N x H x W bool, or None without a mask) and the slices'
    normalised images at native resolution (``images``); with a volume recipe the items are slabs:
    N x C x D x H x W input, N x d x h x w reference, no ``images``."""

    case_id: str
    inputs: SliceSet
    reference: torch.Tensor | None
    label: int | None
    images: torch.Tensor | None = None
    """The normalised intensities at native resolution, N x C x H x W float32 (every channel of the volume
    after the recipe's percentile clip and z-score; no 2.5D context channels): what refinement steps read."""


@dataclass
class Timings:
    """Seconds per stage of a unit."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))

    @contextmanager
    def stage(self, name: str, device: torch.device | None = None) -> Iterator[None]:
        started = time.perf_counter()
        yield
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)
        self.seconds[name] += time.perf_counter() - started


def read_case_slices(case: Case, recipe: Recipe) -> CaseSlices:
    """Read, normalise and slice one case; the reference stays at native resolution."""
    return case_slices(case, load_case(case), recipe)


def case_slices(case: Case, loaded: LoadedCase, recipe: Recipe) -> CaseSlices:
    """Normalise and cut an already loaded case into the recipe's items (slices, or 3D slabs: then maps and
    reference are N x d x h x w); the reference stays at native resolution."""
    image, _ = recipe.preprocess()(loaded.image, None)
    inputs = recipe.items(case.case_id, image, loaded.mask, case.label)
    reference = recipe.native_reference(loaded.mask) if loaded.mask is not None else None
    images = None
    if isinstance(recipe, SliceRecipe):
        channels = image.array if image.array.ndim == 4 else image.array[None]
        images = torch.from_numpy(np.ascontiguousarray(np.moveaxis(channels, SLICE_AXES[recipe.axis] + 1, 0))).float()
    return CaseSlices(case.case_id, inputs, reference, case.label, images)


class _Rows:
    """Column-wise collector of slice rows (one block = one model x method x result over N slices);
    blocks are kept as NumPy columns and become one DataFrame at the end (a DataFrame per block
    costs more than the counting itself)."""

    def __init__(self, case_id: str, fold: int, role: str, slice_index: np.ndarray) -> None:
        self.case_id, self.fold, self.role, self.slice_index = case_id, fold, role, slice_index
        self.labels: list[tuple[str, str, str, str, int]] = []
        self.counts: list[np.ndarray] = []
        self.slices: list[np.ndarray] = []
        self.probability: list[np.ndarray] = []
        self.score: list[np.ndarray] = []

    def add(
        self,
        model: str,
        method: str,
        result: str,
        kind: str,
        counts: torch.Tensor,
        probability: torch.Tensor | None = None,
        score: torch.Tensor | None = None,
        summed: bool = False,
    ) -> None:
        counts_np = counts.cpu().numpy().astype(np.int64)
        if summed:
            counts_np = counts_np.sum(0, keepdims=True)
        n = len(counts_np)
        self.labels.append((model, method, result, kind, n))
        self.counts.append(counts_np)
        self.slices.append(np.full(n, -1) if summed else self.slice_index)
        self.probability.append(probability.double().cpu().numpy() if probability is not None else np.full(n, np.nan))
        self.score.append(score.double().cpu().numpy() if score is not None else np.full(n, np.nan))

    def frame(self) -> pd.DataFrame:
        if not self.labels:
            return pd.DataFrame({c: [] for c in SLICE_COLUMNS})
        sizes = [label[4] for label in self.labels]
        counts = np.concatenate(self.counts)
        total = len(counts)
        columns = {
            "case": np.full(total, self.case_id, dtype=object),
            "slice": np.concatenate(self.slices).astype(np.int64),
            "fold": np.full(total, self.fold, dtype=np.int64),
            "role": np.full(total, self.role, dtype=object),
        }
        for position, name in enumerate(("model", "method", "result", "kind")):
            columns[name] = np.repeat(np.array([label[position] for label in self.labels], dtype=object), sizes)
        for position, name in enumerate(("tp", "fp", "fn", "tn")):
            columns[name] = counts[:, position]
        columns["probability"] = np.concatenate(self.probability)
        columns["score"] = np.concatenate(self.score)
        return pd.DataFrame(columns)[SLICE_COLUMNS]


def empty_counts(reference: torch.Tensor) -> torch.Tensor:
    """Counts (N x 4) of an empty prediction: TP = FP = 0, FN = reference voxels, TN = the rest."""
    positives = reference.flatten(1).sum(1)
    total = reference[0].numel()
    zeros = torch.zeros_like(positives)
    return torch.stack([zeros, zeros, positives, total - positives], dim=-1).long()


def _negative_to_empty(counts: torch.Tensor, positive: torch.Tensor, empty: torch.Tensor) -> torch.Tensor:
    """Counts where slices the classifier calls negative (``positive`` False) get the empty prediction's counts."""
    return torch.where(positive[..., None], counts, empty)


def compute_maps(
    case: CaseSlices,
    models: list[FoldModel],
    batch_size: int,
    device: torch.device,
    timings: Timings,
    only: set[tuple[str, str]] | None = None,
) -> tuple[dict[tuple[str, str], torch.Tensor], dict[str, torch.Tensor]]:
    """Maps ((model, method) -> N x H x W on ``device``, native size) and positive-class probabilities per model."""
    size = tuple(case.reference.shape[1:]) if case.reference is not None else tuple(case.inputs.images.shape[2:])
    maps: dict[tuple[str, str], list[torch.Tensor]] = defaultdict(list)
    probabilities: dict[str, list[torch.Tensor]] = defaultdict(list)
    for fold_model in models:
        methods = [m for m in fold_model.methods if only is None or (fold_model.name, m) in only]
        if not methods:
            continue
        target = fold_model.card.num_classes - 1
        for start in range(0, len(case.inputs), batch_size):
            with timings.stage("transfer", device):
                batch = case.inputs.images[start : start + batch_size].to(device, non_blocking=True)
            with timings.stage("cams", device):
                batch_maps, p = slice_cams(fold_model.engine, batch, methods, target, size)
            for method in methods:
                maps[(fold_model.name, method)].append(batch_maps[method])
            probabilities[fold_model.name].append(p)
    return {k: torch.cat(v) for k, v in maps.items()}, {k: torch.cat(v) for k, v in probabilities.items()}


def held_out_unit(
    case: CaseSlices, fold: int, models: list[FoldModel], config: StudyConfig, device: torch.device, timings: Timings
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Slice rows and agreement rows of a held-out case (see the module docstring)."""
    if case.reference is None:
        raise InvalidInputError(f"case '{case.case_id}' has no reference mask: a study measures maps against masks")
    maps, probabilities = compute_maps(case, models, config.batch_size, device, timings)
    reference = case.reference.to(device)
    slice_index = case.inputs.slice_index.numpy()
    rows = _Rows(case.case_id, fold, "test", slice_index)
    empty = empty_counts(reference)
    fixed = config.fixed_thresholds()
    with timings.stage("masks+metrics", device):
        rows.add("", "empty", "empty", "empty", empty)
        _threshold_rows(rows, maps, probabilities, reference, empty, config, summed=False)
        for (model, method), m in maps.items():
            probability = probabilities[model]
            # threshold-free score per slice; its counts are the reference's (those of an empty prediction)
            rows.add(
                model,
                method,
                "mean-dice-256",
                "threshold-free",
                empty,
                probability,
                mean_dice_over_thresholds(m, reference),
            )
        for ensemble in config.ensembles:
            combos, counts = ensemble_counts([maps[member] for member in ensemble.members], reference, ensemble.rule)
            for combo, c in zip(combos, counts):
                rows.add(ensemble.name, "ensemble", "|".join(Threshold("fixed", t).name for t in combo), "ensemble", c)
    with timings.stage("refine", device):
        refined_rows(rows.add, case, maps, probabilities, reference, config, summed=False)
    with timings.stage("agreement", device):
        agreement = _agreement(case.case_id, fold, slice_index, maps, fixed or [0.5])
    return rows.frame(), agreement


def _threshold_rows(
    rows: _Rows,
    maps: dict[tuple[str, str], torch.Tensor],
    probabilities: dict[str, torch.Tensor],
    reference: torch.Tensor,
    empty: torch.Tensor,
    config: StudyConfig,
    summed: bool,
) -> None:
    """Every single (model, method) map thresholded every configured way (fixed grid through the sweep
    kernel, then the other modes), counted against ``reference``; per slice, or summed over the case."""
    fixed = config.fixed_thresholds()
    for (model, method), m in maps.items():
        probability = probabilities[model]
        positive = classifier_positive(probability)
        kept = None if summed else probability
        if fixed:
            counts = fixed_threshold_counts(m, reference, fixed)
            for t, c in zip(fixed, counts):
                c = _negative_to_empty(c, positive, empty) if config.empty_when_negative else c
                rows.add(model, method, Threshold("fixed", t).name, "threshold", c, kept, summed=summed)
        for threshold in config.other_thresholds():
            c = confusion_counts(apply_threshold(m, threshold), reference)
            c = _negative_to_empty(c, positive, empty) if config.empty_when_negative else c
            rows.add(model, method, threshold.name, "threshold", c, kept, summed=summed)


def training_unit(
    case: CaseSlices, fold: int, models: list[FoldModel], config: StudyConfig, device: torch.device, timings: Timings
) -> pd.DataFrame:
    """Case-summed counts of a case that trains ``fold``: every single configuration at every configured
    threshold (the training-case threshold rule) and every ensemble at every threshold combination
    (the fold's grid search). One row per configuration x result."""
    if case.reference is None:
        raise InvalidInputError(
            f"case '{case.case_id}' has no reference mask: training cases choose thresholds against their masks"
        )
    maps, probabilities = compute_maps(case, models, config.batch_size, device, timings)
    reference = case.reference.to(device)
    rows = _Rows(case.case_id, fold, "train", case.inputs.slice_index.numpy())
    empty = empty_counts(reference)
    with timings.stage("masks+metrics", device):
        rows.add("", "empty", "empty", "empty", empty, summed=True)
        _threshold_rows(rows, maps, probabilities, reference, empty, config, summed=True)
        for ensemble in config.ensembles:
            combos, counts = ensemble_counts([maps[member] for member in ensemble.members], reference, ensemble.rule)
            for combo, c in zip(combos, counts):
                rows.add(
                    ensemble.name,
                    "ensemble",
                    "|".join(Threshold("fixed", t).name for t in combo),
                    "ensemble",
                    c,
                    summed=True,
                )
    with timings.stage("refine", device):
        refined_rows(rows.add, case, maps, probabilities, reference, config, summed=True)
    return rows.frame()


def _agreement(
    case_id: str, fold: int, slice_index: np.ndarray, maps: dict[tuple[str, str], torch.Tensor], thresholds: list[float]
) -> pd.DataFrame:
    """Per-slice mean pairwise IoU across methods (per model) and across models (per method), at every threshold."""
    by_model: dict[str, list[str]] = defaultdict(list)
    by_method: dict[str, list[str]] = defaultdict(list)
    for model, method in maps:
        by_model[model].append(method)
        by_method[method].append(model)
    groups = [("methods", model, [(model, k) for k in methods]) for model, methods in by_model.items()]
    groups += [("models", method, [(m, method) for m in models]) for method, models in by_method.items()]
    blocks = []
    for kind, group, members in groups:
        if len(members) < 2:
            continue
        values = (
            pairwise_iou_agreement_at_thresholds([maps[member] for member in members], thresholds).cpu().numpy()
        )  # T x N
        for t, row in zip(thresholds, values):
            blocks.append(
                pd.DataFrame(
                    {
                        "case": case_id,
                        "slice": slice_index,
                        "fold": fold,
                        "kind": kind,
                        "group": group,
                        "result": Threshold("fixed", t).name,
                        "value": row,
                    }
                )
            )
    return (
        pd.concat(blocks, ignore_index=True)[AGREEMENT_COLUMNS]
        if blocks
        else pd.DataFrame({c: [] for c in AGREEMENT_COLUMNS})
    )
