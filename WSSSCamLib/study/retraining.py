"""Guan & Loew 2021's evaluation of CAMs: retrain the classifier on CAM-filtered and on mask-filtered slices.

Guan & Loew 2021 (section II-B, Experiment #2) multiplies every ROI by its Grad-CAM (resized, scaled to
[0, 1]) and trains the same architecture from scratch on those CAM-filtered ROIs; for comparison
it also trains on truth-mask-filtered ROIs (abnormal ROIs times their tumour mask, normal ROIs
times a randomly chosen tumour mask of an abnormal ROI, so both classes show similar outlines).
The better the CAM covers what the classifier needs, the closer the CAM-filtered accuracy comes to
the mask-filtered one.

Here, per fold k of the study, with the fold's checkpoint of ``spec.model``:

* weights ``w`` (N x H x W in [0, 1], the classifier's input grid ``recipe.size``) per variant:
  ``cam``: the ``spec.method`` map of the positive class (Guan & Loew 2021); ``cam-mask``: that map
  thresholded with ``spec.threshold`` (binary); ``mask``: the reference mask (normal slices get the
  mask of an abnormal slice of the same split, drawn with the study's seed); ``inverse-mask``:
  1 - that mask (Guan & Loew 2021's control: tumour removed); ``original``: no filter (w = 1).
* filtered slice ``x' = b + (x - b) * w`` per channel, where ``b`` is the channel's minimum over
  the slice: the normalised slices are not zero at background, so "multiply by w" is applied to the
  non-negative image ``x - b`` and removed pixels become the slice's darkest value (black in the
  unnormalised image, as in Guan & Loew 2021).
* the same architecture is trained from scratch (seed + fold, ``spec.epochs``, no early stopping,
  the model's ``train`` options otherwise) on the fold's training cases and tested on its
  held-out cases (filtered the same way; maps from the fold's model, which never saw them).

Results: ``retraining/<variant>/fold<k>.json`` (one per trained fold, written atomically; a
finished one is not recomputed) and the table ``retraining.csv`` (variant, fold, slices, ROC AUC,
accuracy, seconds) written by the report.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import asdict, fields
from pathlib import Path

import pandas as pd
import torch

from ..atomic import write_text
from ..cams import CamEngine
from ..data.slices import SliceSet
from ..data.splits import Folds
from ..devices import resolve_device
from ..errors import InvalidInputError
from ..inference.volume_cams import slice_cams
from ..masks import Threshold, apply_threshold
from ..models.zoo import build_model
from ..training.trainer import TrainConfig, evaluate, train_classifier
from .config import VARIANTS, FilteredRetrainingSpec
from .context import FoldModel
from .layout import retraining_result_path, retraining_result_paths

RETRAINING_COLUMNS = ["variant", "fold", "test_slices", "test_positive_slices", "auc", "accuracy", "epochs", "seconds"]


def filter_slices(images: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``b + (images - b) * w``: images N x C x H x W, weights N x H x W in [0, 1]; b = per slice and
    channel minimum (see the module docstring). Returns a new N x C x H x W tensor."""
    if weights.shape != (images.shape[0], *images.shape[2:]):
        raise ValueError(
            f"filter_slices: weights of shape {tuple(weights.shape)} for images of shape {tuple(images.shape)}"
        )
    floor = images.amin(dim=(2, 3), keepdim=True)
    return floor + (images - floor) * weights[:, None].to(images.dtype)


def borrowed_masks(slices: SliceSet, seed: int) -> torch.Tensor:
    """Masks N x H x W (float): a slice's own mask when it is abnormal, else the mask of an abnormal
    slice of the same set drawn at random (seeded); all zero when the set has no abnormal slice with
    a non-empty mask."""
    if slices.masks is None:
        raise InvalidInputError("filtered retraining with a mask variant needs reference masks for every case")
    masks = slices.masks.float()
    abnormal = torch.nonzero((slices.labels > 0) & slices.masks.flatten(1).any(1)).squeeze(
        1
    )  # lenders: a non-empty mask
    normal = torch.nonzero(slices.labels == 0).squeeze(1)
    if len(abnormal) and len(normal):
        generator = torch.Generator().manual_seed(seed)
        drawn = abnormal[torch.randint(len(abnormal), (len(normal),), generator=generator)]
        masks[normal] = masks[drawn]
    return masks


def cam_weights(
    slices: SliceSet,
    engine: CamEngine,
    target_class: int,
    method: str,
    batch_size: int,
    device: torch.device,
    threshold: Threshold | None = None,
) -> torch.Tensor:
    """``method`` maps (N x H x W on the CPU, [0, 1]) of ``target_class`` from the fold model's ``engine``,
    at the slices' own size; binary (map > cut) when ``threshold`` is given."""
    size = tuple(slices.images.shape[2:])
    parts = []
    for start in range(0, len(slices), batch_size):
        batch = slices.images[start : start + batch_size].to(device)
        maps, _ = slice_cams(engine, batch, [method], target_class, size)
        m = maps[method]
        parts.append((apply_threshold(m, threshold).float() if threshold is not None else m.clamp(0, 1)).cpu())
    return torch.cat(parts) if parts else torch.empty(0, *size)


def variant_weights(
    variant: str,
    fold_model: Callable[[], FoldModel],
    spec: FilteredRetrainingSpec,
    batch_size: int,
    device: torch.device,
) -> Callable[[SliceSet, int], torch.Tensor | None]:
    """The weight function of ``variant``: (slices, draw seed) -> weights w (None for ``original``).
    The CAM variants ask ``fold_model`` for the fold's network (on ``device``) once, here, for both splits."""
    if variant in ("cam", "cam-mask"):
        network = fold_model()
        threshold = Threshold.parse(spec.threshold) if variant == "cam-mask" else None
        return lambda part, _: cam_weights(
            part, network.engine, network.card.num_classes - 1, spec.method, batch_size, device, threshold
        )
    if variant == "mask":
        return borrowed_masks
    if variant == "inverse-mask":
        return lambda part, draw: 1 - borrowed_masks(part, draw)
    if variant == "original":
        return lambda part, draw: None
    raise ValueError(f"unknown filtered-retraining variant '{variant}'; choose from {list(VARIANTS)}")


def result_fingerprint(
    spec: FilteredRetrainingSpec, variant: str, seed: int, train_options: dict, checkpoint_sha256: str
) -> str:
    """A hash of everything that decides one variant x fold result: the retraining settings that the
    variant uses, the study seed, the training options and the fold checkpoint (its maps)."""
    settings = {
        "model": spec.model,
        "epochs": spec.epochs,
        "variant": variant,
        "seed": seed,
        "train": train_options,
        "method": spec.method if variant.startswith("cam") else None,
        "threshold": spec.threshold if variant == "cam-mask" else None,
        "checkpoint": checkpoint_sha256 if variant.startswith("cam") else None,
    }
    return hashlib.sha256(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stored_fingerprint(output: Path, variant: str, fold: int) -> str | None:
    """The fingerprint of a finished result, or None when there is none (or it cannot be read)."""
    path = retraining_result_path(output, variant, fold)
    try:
        return json.loads(path.read_text()).get("fingerprint")
    except (OSError, ValueError):
        return None


def retrain_fold(
    slices: SliceSet,
    folds: Folds,
    fold: int,
    architecture: str,
    classes: int,
    fold_model: Callable[[], FoldModel],
    spec: FilteredRetrainingSpec,
    variant: str,
    train_options: dict,
    seed: int,
    batch_size: int,
    device: str,
    fingerprint: str = "",
) -> dict:
    """Train ``architecture`` (``classes`` outputs, as the fold checkpoint) from scratch on the fold's
    training cases filtered by ``variant``; test on its held-out cases filtered the same way. ``fold_model``
    gives the fold's network on ``device`` (asked only by the CAM variants)."""
    started = time.perf_counter()
    torch_device = resolve_device(device)
    train, test = slices.of_cases(folds.training(fold)), slices.of_cases(folds.held_out(fold))
    split_seed = seed + fold
    weigh = variant_weights(variant, fold_model, spec, batch_size, torch_device)
    filtered = []
    for part, offset in ((train, 0), (test, 1)):
        weights = weigh(part, split_seed * 2 + offset)
        images = part.images if weights is None else filter_slices(part.images, weights)
        filtered.append(SliceSet(images, part.labels, part.masks, part.case_ids, part.slice_index))
    known = {f.name for f in fields(TrainConfig)}
    options = {k: v for k, v in train_options.items() if k in known}
    config = TrainConfig(
        **{**options, "epochs": spec.epochs, "patience": 0, "seed": split_seed, "device": device, "progress": False}
    )
    torch.manual_seed(split_seed)
    model = build_model(architecture, slices.images.shape[1], classes)
    train_classifier(model, filtered[0], None, config)
    auc, accuracy = evaluate(model, filtered[1], device=device, flip_averaging=config.flip_averaging)
    return {
        "variant": variant,
        "fold": fold,
        "test_slices": len(test),
        "test_positive_slices": int(test.labels.sum()),
        "auc": auc,
        "accuracy": accuracy,
        "epochs": spec.epochs,
        "seconds": time.perf_counter() - started,
        "model": spec.model,
        "method": spec.method if variant.startswith("cam") else None,
        "train": asdict(config),
        "fingerprint": fingerprint,
    }


def write_result(output: Path, result: dict) -> Path:
    """Write one variant x fold result (atomically) where the layout puts it; returns its path."""
    path = retraining_result_path(output, result["variant"], result["fold"])
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text(path, json.dumps(result, indent=1))
    return path


def retraining_table(output: Path, variants: list[str] | None = None, folds: int | None = None) -> pd.DataFrame:
    """The finished retraining results under ``output/retraining`` (one row per variant x fold), only
    of ``variants`` and folds below ``folds`` when given."""
    rows = [json.loads(p.read_text()) for p in retraining_result_paths(output)]
    rows = [r for r in rows if (variants is None or r["variant"] in variants) and (folds is None or r["fold"] < folds)]
    if not rows:
        return pd.DataFrame({c: [] for c in RETRAINING_COLUMNS})
    return pd.DataFrame(rows)[RETRAINING_COLUMNS].sort_values(["variant", "fold"], ignore_index=True)


def retraining_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Mean and standard deviation of ROC AUC and accuracy over folds, per variant (Guan & Loew 2021 Table II form)."""
    if table.empty:
        return pd.DataFrame(columns=["variant", "folds", "auc_mean", "auc_sd", "accuracy_mean", "accuracy_sd"])
    grouped = table.groupby("variant", sort=False)
    summary = grouped.agg(
        folds=("fold", "size"),
        auc_mean=("auc", "mean"),
        auc_sd=("auc", "std"),
        accuracy_mean=("accuracy", "mean"),
        accuracy_sd=("accuracy", "std"),
    ).reset_index()
    order = {v: i for i, v in enumerate(VARIANTS)}
    return summary.sort_values("variant", key=lambda s: s.map(order)).reset_index(drop=True)
