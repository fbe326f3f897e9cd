"""The ``segment`` stage (with ``segmentation``): pseudo-labels -> segmentation networks, and the fully
supervised upper bound, per fold, resumable per fold x network.

Per fold of this shard (``--folds`` / ``--shard`` as the other stages), networks in this order:

* ``pseudo-label`` ("pseudo-label U-Net"): trained on the pseudo-labels of the fold's training cases
  (:mod:`WSSSCamLib.study.pseudo_labels`: source chosen on those cases' unit rows, ignore band, filter);
* ``self-trained`` ("self-trained U-Net", with ``self_training: true``): one round of self-training, the
  pseudo-labels being the first U-Net's segmentation of the same training slices (same rules), trained again
  from the same initial weights;
* ``supervised`` ("supervised U-Net", with ``supervised: true``): the same network, budget, seed and cases
  trained on the reference masks (the fully supervised upper bound).

Every network is a ``monai-unet`` (:mod:`WSSSCamLib.training.segmentation`) seeded with ``seed + fold``: with
``dims`` 2 a 2D U-Net on the kept slices, with ``dims`` 3 a 3D U-Net on windows of ``depth`` consecutive slices of
each training case (a dropped slice's labels ignored). It then segments the fold's held-out cases through the
predict engine's path (:func:`~WSSSCamLib.inference.segmentation.segment_slices`: the recipe's slices at
``size``, a 3D U-Net over each case's stack in its training windows, softmax resized bilinearly to each slice's
native grid, argmax) and its TP/FP/FN/TN per slice against the reference become rows of the study's slice table (role
``test``, model = the network's name, method ``monai-unet`` or ``monai-unet-3d``, result ``argmax``, kind
``segmentation``), measured by the report like every other configuration.

Files: ``segment/<network>/fold<k>/`` (:func:`~WSSSCamLib.study.layout.segment_paths`): ``model.pt`` +
``model.json`` (loads in ``wssscam predict``), ``train_log.csv``, ``slices.parquet``, and ``result.json``,
written last by atomic rename: it holds the fingerprint of the settings (the ``segmentation`` key, the
network's recipe, the fold's cases, the source chosen and the fold classifiers' SHA-256, for self-training the
first U-Net's SHA-256) and the SHA-256 of its own checkpoint. A network whose result holds the current
fingerprint and whose checkpoint still has that hash is skipped; anything else (no result, a killed run,
other settings, a changed checkpoint) is trained again.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict
from pathlib import Path

import pandas as pd
import torch

from ...atomic import write_text
from ...data.datasets import load_case
from ...data.recipe import input_channel_names
from ...devices import resolve_device
from ...errors import InvalidInputError
from ...inference.segmentation import segment_slices
from ...metrics import confusion_counts
from ...training.checkpoint import file_sha256, load_checkpoint, save_checkpoint
from ...training.segmentation import (
    CLASS_NAMES,
    IGNORE,
    SegmentationTrainConfig,
    depth_windows,
    segmentation_card,
    train_segmentation,
)
from .. import pseudo_labels
from ..context import Shard, StudyContext, in_shard
from ..layout import segment_paths, unit_markers, unit_paths_of
from ..unit_store import write_parquet
from ..units import _Rows

NETWORKS: dict[str, str] = {
    "pseudo-label": "pseudo-label U-Net",
    "self-trained": "self-trained U-Net",
    "supervised": "supervised U-Net",
}
"""Network slug (folder name) -> its configuration name in the study tables."""
KIND = "segmentation"
METHOD = "monai-unet"
RESULT = "argmax"


CANDIDATE_RULE = "selection_dice: mean Dice over every training slice with abnormality, dropped = 0"
"""How :func:`~WSSSCamLib.study.pseudo_labels.pick_labels` ranks candidate sources (part of the fingerprint of a
network trained on the candidate it picked)."""


def method_name(dims: int) -> str:
    """The method column of a network's rows: ``monai-unet`` (2D, on slices) or ``monai-unet-3d`` (on stacks)."""
    return METHOD if dims == 2 else f"{METHOD}-3d"


def networks(context: StudyContext) -> list[str]:
    """The networks the configuration asks for, in training order."""
    spec = context.config.segmentation
    return (
        ["pseudo-label"]
        + (["self-trained"] if spec.self_training else [])
        + (["supervised"] if spec.supervised else [])
    )


def training_rows(context: StudyContext, fold: int) -> pd.DataFrame | None:
    """The unit rows of fold ``fold``'s TRAINING cases (role ``train``): what chooses its source. None when the
    source is a named rule (nothing to choose). Refuses while a training unit of the fold is missing."""
    if not pseudo_labels.needs_units(context.config):
        return None
    wanted = set(context.folds.training(fold))
    frames, found = [], set()
    for marker_path in unit_markers(context.output):
        marker = json.loads(marker_path.read_text())
        if marker["fold"] == fold and marker["role"] == "train" and marker["case"] in wanted:
            frames.append(pd.read_parquet(unit_paths_of(marker_path)["slices"]))
            found.add(marker["case"])
    missing = sorted(wanted - found)
    if missing:
        raise InvalidInputError(
            f"{context.output}: segment stage, fold {fold}: {len(missing)} training units are not finished "
            f"(e.g. case {missing[0]}); run the 'cams' stage first"
        )
    return pd.concat(frames, ignore_index=True)


def _classifier_hashes(context: StudyContext, fold: int, choices: list[pseudo_labels.SourceChoice]) -> dict[str, str]:
    models = dict.fromkeys(model for choice in choices for model, _ in choice.members)
    return {m: context.checkpoint(context.model_spec(m), fold).sha256 for m in models}


def settings(
    context: StudyContext,
    fold: int,
    network: str,
    choices: list[pseudo_labels.SourceChoice],
    parent: str | None,
) -> dict:
    """Everything that decides one network x fold result (hashed by :func:`fingerprint`); ``choices``: the fold's
    candidate sources (one, or several that :func:`~WSSSCamLib.study.pseudo_labels.pick_labels` chooses among)."""
    spec = context.config.segmentation
    which = ("supervised", "self_training")  # they decide which networks run, not what one of them computes
    data = {
        "network": network,
        "segmentation": {
            k: v for k, v in asdict(spec).items() if k not in which and (spec.dims == 3 or k not in ("dims", "depth"))
        },  # a 2D network's settings leave the 3D keys out, so its earlier results stay current
        "recipe": asdict(pseudo_labels.network_recipe(context)),
        "seed": spec.seed + fold,
        "training_cases": sorted(context.folds.training(fold)),
        "held_out_cases": sorted(context.folds.held_out(fold)),
    }
    if network != "supervised":
        described = [choice.describe() for choice in choices]
        data["source"] = described[0] if len(described) == 1 else described
        if len(described) > 1:
            data["choice"] = CANDIDATE_RULE
        data["classifiers"] = _classifier_hashes(context, fold, choices)
        data["empty_when_negative"] = context.config.empty_when_negative
    else:  # the upper bound reads no CAM: its source settings do not concern it
        data["segmentation"] = {
            k: v for k, v in data["segmentation"].items() if k not in ("source", "ignore_band", "filter")
        }
    if network == "self-trained":
        data["parent_checkpoint"] = parent
    return data


def fingerprint(values: dict) -> str:
    """A short hash of :func:`settings`."""
    return hashlib.sha256(json.dumps(values, sort_keys=True, default=str).encode()).hexdigest()[:16]


def stored_result(output: Path, network: str, fold: int) -> dict | None:
    """The result of a finished network x fold, or None (none, unreadable)."""
    try:
        return json.loads(segment_paths(output, network, fold)["result"].read_text())
    except (OSError, ValueError):
        return None


def is_current(output: Path, network: str, fold: int, expected: str) -> bool:
    """Whether network x fold is finished with fingerprint ``expected`` and its checkpoint and rows are intact."""
    result = stored_result(output, network, fold)
    paths = segment_paths(output, network, fold)
    if result is None or result.get("fingerprint") != expected:
        return False
    if not paths["checkpoint"].exists() or not paths["slices"].exists():
        return False
    return file_sha256(paths["checkpoint"]) == result.get("checkpoint_sha256")


def _parent_hash(output: Path, fold: int) -> str | None:
    path = segment_paths(output, "pseudo-label", fold)["checkpoint"]
    return file_sha256(path) if path.exists() else None


def expected_fingerprints(
    context: StudyContext, fold: int, rows: pd.DataFrame | None
) -> tuple[dict[str, str], list[pseudo_labels.SourceChoice]]:
    """Per network of the configuration, the fingerprint its fold result must carry now; and the fold's candidate
    sources. ``rows``: the fold's training unit rows (:func:`training_rows`)."""
    choices = pseudo_labels.choose_sources(context.config, rows, fold)
    expected = {}
    for network in networks(context):
        parent = _parent_hash(context.output, fold) if network == "self-trained" else None
        expected[network] = fingerprint(settings(context, fold, network, choices, parent))
    return expected, choices


def held_out_rows(
    context: StudyContext, fold: int, name: str, model: torch.nn.Module, device: torch.device
) -> pd.DataFrame:
    """Slice rows (``units.SLICE_COLUMNS``) of network ``name`` on fold ``fold``'s held-out cases: the predict
    engine's segmentation (softmax at ``size``, bilinear to the native grid, argmax; a 3D U-Net over each case's
    stack of slices) counted against the reference."""
    recipe = pseudo_labels.network_recipe(context)
    dims = context.config.segmentation.dims
    depth = context.config.segmentation.depth if dims == 3 else None
    by_id = {c.case_id: c for c in context.dataset.cases}
    model = model.to(device).eval()
    frames = []
    for case_id in context.folds.held_out(fold):
        case = by_id[case_id]
        loaded = load_case(case)
        if loaded.mask is None:
            raise InvalidInputError(
                f"case '{case_id}' has no reference mask: a study measures masks against references"
            )
        image, _ = recipe.preprocess()(loaded.image, None)
        inputs = recipe.items(case_id, image, loaded.mask, case.label)
        reference = recipe.native_reference(loaded.mask)
        _, masks = segment_slices(
            model, inputs.images, tuple(reference.shape[1:]), len(CLASS_NAMES), context.config.batch_size, depth
        )
        rows = _Rows(case_id, fold, "test", inputs.slice_index.numpy())
        rows.add(name, method_name(dims), RESULT, KIND, confusion_counts(masks, reference))
        frames.append(rows.frame())
    return pd.concat(frames, ignore_index=True)


def training_samples(
    data: pseudo_labels.TrainingSlices, labels: torch.Tensor, keep: torch.Tensor | None, dims: int, depth: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """What a network trains on, from the fold's training slices and their ``labels`` (N x size x size) and
    ``keep`` (N bool, None: all): 2D, the kept slices; 3D, windows of ``depth`` consecutive slices of each case
    (:func:`~WSSSCamLib.training.segmentation.depth_windows`), a dropped slice's labels all ignored."""
    if dims == 2:
        return (data.images, labels) if keep is None else (data.images[keep], labels[keep])
    if keep is not None:
        labels = labels.clone()
        labels[~keep] = IGNORE
    windows = [
        depth_windows(data.images[case], labels[case], depth) for case in pseudo_labels.case_ranges(data.case_ids)
    ]
    return torch.cat([w for w, _ in windows]), torch.cat([t for _, t in windows])


def train_network(
    context: StudyContext,
    fold: int,
    network: str,
    images: torch.Tensor,
    labels: torch.Tensor,
    values: dict,
    extra: dict,
    device: torch.device,
    progress: bool,
) -> dict:
    """Train one network x fold, write checkpoint, card, log and held-out rows, then (last) its result."""
    spec = context.config.segmentation
    paths = segment_paths(context.output, network, fold)
    paths["result"].unlink(missing_ok=True)  # not done until the new result is written
    paths["result"].parent.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    config = SegmentationTrainConfig(
        epochs=spec.epochs,
        batch_size=spec.batch_size,
        learning_rate=spec.lr,
        seed=spec.seed + fold,
        augment=spec.augment,
        device=str(device),
    )
    if progress:
        unit = "windows" if spec.dims == 3 else "slices"
        print(f"segment: {NETWORKS[network]}, fold {fold}: {len(images)} {unit}, {spec.epochs} epochs", flush=True)
    model, history = train_segmentation(images, labels, config, log_path=paths["log"])
    recipe = pseudo_labels.network_recipe(context)
    card = segmentation_card(
        images.shape[1],
        input_channel_names(context.dataset.channel_names, context.recipe.context_channel),
        asdict(recipe),
        {
            "k": context.fold_count,
            "fixed": context.folds.fixed,
            "fold": fold,
            "train": context.folds.training(fold),
            "validation": [],
            "test": context.folds.held_out(fold),
        },
        {**asdict(config), "network": NETWORKS[network], "history": [asdict(h) for h in history.history], **extra},
        normalisation=recipe.normalisation(),
        depth=spec.depth if spec.dims == 3 else None,
    )
    save_checkpoint(model, card, paths["checkpoint"])
    rows = held_out_rows(context, fold, NETWORKS[network], model, device)
    write_parquet(rows, paths["slices"])
    result = {
        "network": network,
        "name": NETWORKS[network],
        "fold": fold,
        "fingerprint": fingerprint(values),
        "settings": values,
        "checkpoint_sha256": file_sha256(paths["checkpoint"]),
        "training_slices": int(len(images)),
        "ignored_fraction": history.ignored_fraction,
        "epochs": spec.epochs,
        "seconds": time.perf_counter() - started,
        **extra,
    }
    write_text(paths["result"], json.dumps(result, indent=1, default=str))
    return result


def run(context: StudyContext, shard: Shard, progress: bool) -> int:
    """Train every unfinished network x fold of this shard's folds; returns the number trained."""
    spec = context.config.segmentation
    if spec is None:
        return 0
    device = resolve_device(context.config.device)
    done = 0
    for fold in context.fold_indices:
        if not in_shard(fold, shard):
            continue
        expected, choices = expected_fingerprints(context, fold, training_rows(context, fold))
        todo = [n for n in networks(context) if not is_current(context.output, n, fold, expected[n])]
        if not todo:
            continue
        needs_source = any(n != "supervised" for n in todo)
        data = pseudo_labels.fold_training_slices(context, fold, choices if needs_source else None, device)
        for network in networks(context):  # in order: a retrained first U-Net changes the self-trained one's hash
            parent = _parent_hash(context.output, fold) if network == "self-trained" else None
            values = settings(context, fold, network, choices, parent)
            if is_current(context.output, network, fold, fingerprint(values)):
                continue
            if network == "pseudo-label":
                labels, keep = data.pseudo, data.keep
                extra = {
                    "source": _source_text(data, fold),
                    "labels": data.counts.to_dict(),
                    "label_quality": pseudo_labels.label_quality(labels[keep], data.reference[keep]),
                    "candidates": data.candidates,
                }
            elif network == "self-trained":
                first, _ = load_checkpoint(
                    segment_paths(context.output, "pseudo-label", fold)["checkpoint"], device=str(device)
                )
                labels, keep, counts = pseudo_labels.self_training_labels(
                    first, data, spec.ignore_band, spec.filter, device, spec.depth if spec.dims == 3 else None
                )
                extra = {
                    "source": f"self-training on the pseudo-label U-Net of fold {fold}",
                    "labels": counts.to_dict(),
                    "label_quality": pseudo_labels.label_quality(labels[keep], data.reference[keep]),
                }
            else:
                labels, keep, extra = data.reference, None, {}
            images, targets = training_samples(data, labels, keep, spec.dims, spec.depth)
            extra["training_slices"] = int(len(data.images) if keep is None else keep.sum())
            if spec.dims == 3:
                extra["training_windows"] = int(len(images))
            train_network(context, fold, network, images, targets, values, extra, device, progress)
            done += 1
    return done


def _source_text(data: pseudo_labels.TrainingSlices, fold: int) -> str:
    """The chosen source, and among several candidates how it was chosen."""
    text = data.choice.describe()
    if len(data.candidates) > 1:
        text += (
            f"; of {len(data.candidates)} candidates, the best labels on fold {fold}'s training cases (mean Dice over "
            "their slices with abnormality, a dropped slice 0)"
        )
    return text


def stale_results(context: StudyContext, rows_of_fold) -> list[str]:
    """Network x fold results of the selected folds that are missing or computed with other settings
    ('<network>/fold<k>'); ``rows_of_fold(fold)``: the fold's training unit rows (or None)."""
    stale = []
    for fold in context.fold_indices:
        expected, _ = expected_fingerprints(context, fold, rows_of_fold(fold))
        stale += [f"{n}/fold{fold}" for n in networks(context) if not is_current(context.output, n, fold, expected[n])]
    return stale


def segment_rows(context: StudyContext) -> pd.DataFrame:
    """The held-out slice rows of every network x selected fold (call after :func:`stale_results` is empty)."""
    frames = [
        pd.read_parquet(segment_paths(context.output, n, f)["slices"])
        for f in context.fold_indices
        for n in networks(context)
    ]
    return pd.concat(frames, ignore_index=True)


def _label_quality_columns(network: str, result: dict) -> dict:
    """The training labels against the training cases' reference masks (a diagnostic on the U-Net grid; 1 for
    the supervised network, whose labels are those masks; None for results written before it was recorded)."""
    if network == "supervised":
        return {"label_fg_dice": 1.0, "label_dice_abnormal": 1.0}
    quality = result.get("label_quality") or {}
    return {"label_fg_dice": quality.get("fg_dice"), "label_dice_abnormal": quality.get("dice_abnormal")}


def segment_table(context: StudyContext) -> pd.DataFrame:
    """One row per network x selected fold: source, training slices, pseudo-label counts, ignored share, seconds."""
    rows = []
    for fold in context.fold_indices:
        for network in networks(context):
            result = stored_result(context.output, network, fold) or {}
            labels = result.get("labels") or {}
            rows.append(
                {
                    "network": NETWORKS[network],
                    "fold": fold,
                    "source": result.get("source", "reference masks"),
                    "training_slices": result.get("training_slices"),
                    "negative_slices": labels.get("negative"),
                    "positive_kept": labels.get("positive_kept"),
                    "dropped_probability": labels.get("dropped_probability"),
                    "dropped_area": labels.get("dropped_area"),
                    "ignored_fraction": result.get("ignored_fraction"),
                    **_label_quality_columns(network, result),
                    "epochs": result.get("epochs"),
                    "seconds": result.get("seconds"),
                }
            )
    return pd.DataFrame(rows)


def candidate_table(context: StudyContext) -> pd.DataFrame:
    """With several candidate sources: one row per selected fold x candidate, from the pseudo-label U-Net's result
    (source, slices, kept positive slices, label quality on them against the training masks, chosen); empty when
    ``segmentation.source`` names one source."""
    rows = []
    for fold in context.fold_indices:
        result = stored_result(context.output, "pseudo-label", fold) or {}
        candidates = result.get("candidates") or []
        if len(candidates) > 1:
            rows += [{"fold": fold, **candidate} for candidate in candidates]
    return pd.DataFrame(rows)
