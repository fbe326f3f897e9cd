"""Faithfulness and pointing rows of a held-out unit (the study's ``faithfulness`` key).

For each model of the unit's fold, up to ``per_case`` slices of the case are drawn (seeded, see
:func:`draw_order`) among the eligible ones: ``abnormal`` = the reference is not empty, ``positive`` =
the model's target-class probability > 0.5 (:func:`~WSSSCamLib.masks.classifier_positive`; the draw
then differs between models), ``all``. Each model x method map of those slices is measured, per slice:

- ``deletion_auc``, ``insertion_auc`` (Petsiuk et al. 2018; deletion sets the removed pixels to
  ``baseline``, insertion starts from the blurred slice), ``drop`` and ``increase`` (the per-image terms
  of Chattopadhay et al. 2018's average drop / increase in confidence, explanation x * L as in the paper)
  and ``confidence`` (the target-class probability of the unchanged slice): :func:`~WSSSCamLib.cams.faithfulness.faithfulness_scores`
  on the network's input grid (``recipe.size``), with the map exactly as the CAM engine gives it there;
- ``pointing`` (Zhang et al. 2016, hit within ``tolerance`` pixels) and ``energy`` (Wang et al. 2020, share
  inside ``energy_region``) against the reference at the slice's native resolution, with the map resized
  there as the study's Dice rows use it; NaN where the slice's reference is empty.

The target class is the card's last class, as for every study map. The sampled slices' maps are computed
again for these rows (a CAM pass over at most ``per_case`` slices per model), so a unit computed before
the key was set gets its table without recomputing its Dice rows. Everything runs batched on the model's
device; :func:`measure_maps` takes N x C x *spatial inputs, 2D slices or 3D volumes alike.

The table ``units/<case>/fold<k>.faithfulness.parquet`` carries its settings, their fingerprint and its
seconds in the Parquet metadata (``attrs["faithfulness"]``): the config fingerprint of the units ignores the key, and
a table of other settings (or none) is recomputed by the ``cams`` stage, the Dice units kept.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from ..cams.faithfulness import confidences, faithfulness_scores
from ..errors import NotReadyError
from ..inference.volume_cams import resize_maps
from ..masks import classifier_positive
from ..metrics import energy_pointing_game, pointing_game
from .config import FaithfulnessSpec
from .context import FoldModel
from .layout import unit_paths
from .unit_store import write_parquet
from .units import CaseSlices, Timings

FAITHFULNESS_COLUMNS = [
    "case",
    "slice",
    "fold",
    "model",
    "method",
    "confidence",
    "deletion_auc",
    "insertion_auc",
    "drop",
    "increase",
    "pointing",
    "energy",
]
FAITHFULNESS_VERSION = 1
"""What a faithfulness table holds; part of its settings fingerprint."""


def settings_fingerprint(spec: FaithfulnessSpec) -> str:
    """A hash of the settings that decide a faithfulness table (and of :data:`FAITHFULNESS_VERSION`)."""
    data = {**asdict(spec), "version": FAITHFULNESS_VERSION}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def draw_order(case_id: str, count: int, seed: int) -> np.ndarray:
    """The positions 0..count-1 of a case's slices in a seeded random order: a permutation from
    ``numpy.random.default_rng([seed, crc32(case_id)])``, so the same for every model, fold, shard and run."""
    return np.random.default_rng([seed, zlib.crc32(case_id.encode())]).permutation(count)


def sample_positions(eligible: np.ndarray, order: np.ndarray, per_case: int | None) -> np.ndarray:
    """The first ``per_case`` eligible positions in ``order`` (all when None), sorted: int64 array."""
    drawn = [int(p) for p in order if eligible[p]]
    return np.sort(np.asarray(drawn[:per_case] if per_case is not None else drawn, dtype=np.int64))


def eligible_slices(pool: str, reference: torch.Tensor, probability: torch.Tensor | None) -> np.ndarray:
    """N bool: which slices may be drawn (``abnormal``: reference N x H x W not empty; ``positive``: the
    classifier's probability N > 0.5; ``all``)."""
    if pool == "abnormal":
        return reference.flatten(1).any(dim=1).cpu().numpy()
    if pool == "positive":
        return classifier_positive(probability).cpu().numpy()
    return np.ones(reference.shape[0], dtype=bool)


def measure_maps(
    model: nn.Module,
    images: torch.Tensor,
    maps: dict[str, torch.Tensor],
    target: int,
    spec: FaithfulnessSpec,
    chunk: int,
    reference: torch.Tensor | None = None,
    reference_maps: dict[str, torch.Tensor] | None = None,
) -> dict[str, np.ndarray]:
    """Per method x sample columns (method-major): ``method``, ``sample`` (position in ``images``) and the
    metrics of the module docstring. ``images`` N x C x *spatial on the model's device, ``maps`` method ->
    N x *spatial (the input grid); ``reference`` N x *ref_spatial bool with ``reference_maps`` (method ->
    maps on its grid; default ``maps``); without a reference ``pointing`` and ``energy`` are NaN. All
    methods go through the perturbation passes together, in batches of ``chunk`` inputs."""
    methods = list(maps)
    n = images.shape[0]
    stacked = torch.cat([maps[m] for m in methods])
    repeated = images.repeat(len(methods), *([1] * (images.ndim - 1)))
    scores = faithfulness_scores(model, repeated, stacked, target, spec.steps, spec.baseline, chunk)
    columns = {k: v.double().cpu().numpy() for k, v in scores.items()}
    if reference is not None:
        on_reference = torch.cat([(reference_maps or maps)[m] for m in methods])
        references = reference.repeat(len(methods), *([1] * (reference.ndim - 1)))
        columns["pointing"] = pointing_game(on_reference, references, spec.tolerance).cpu().numpy()
        columns["energy"] = energy_pointing_game(on_reference, references, spec.energy_region).cpu().numpy()
    else:
        columns["pointing"] = columns["energy"] = np.full(len(stacked), np.nan)
    return {
        "method": np.repeat(np.array(methods, dtype=object), n),
        "sample": np.tile(np.arange(n), len(methods)),
        **columns,
    }


def on_grid(maps: torch.Tensor, size: tuple[int, ...]) -> torch.Tensor:
    """Maps N x *spatial resized to ``size``: 2D as the study's Dice rows (:func:`resize_maps`), 3D
    trilinearly the same way (half-pixel centres, clamped to [0, 1])."""
    if len(size) == 2:
        return resize_maps(maps, size)
    if tuple(maps.shape[1:]) == tuple(size):
        return maps
    return F.interpolate(maps[:, None].float(), size=size, mode="trilinear", align_corners=False)[:, 0].clamp_(0, 1)


def _probabilities(fold_model: FoldModel, case: CaseSlices, target: int, batch_size: int, device: torch.device):
    """The model's target-class probability on every slice of the case (N, on ``device``)."""
    out = [
        confidences(
            fold_model.model,
            case.inputs.images[start : start + batch_size].to(device),
            torch.full((min(batch_size, len(case.inputs) - start),), target, device=device),
            batch_size,
        )
        for start in range(0, len(case.inputs), batch_size)
    ]
    return torch.cat(out)


def case_faithfulness(
    case: CaseSlices,
    fold: int,
    models: list[FoldModel],
    spec: FaithfulnessSpec,
    batch_size: int,
    device: torch.device,
    timings: Timings,
) -> pd.DataFrame:
    """The faithfulness rows of held-out case ``case`` under ``fold``'s models (see the module docstring)."""
    order = draw_order(case.case_id, len(case.inputs), spec.seed)
    native = tuple(case.reference.shape[1:])
    blocks = []
    with timings.stage("faithfulness", device):
        for fold_model in models:
            methods = [m for m in fold_model.methods if spec.methods is None or m in spec.methods]
            target = fold_model.card.num_classes - 1
            probability = (
                _probabilities(fold_model, case, target, batch_size, device) if spec.slices == "positive" else None
            )
            positions = sample_positions(
                eligible_slices(spec.slices, case.reference, probability), order, spec.per_case
            )
            if not methods or len(positions) == 0:
                continue
            images = case.inputs.images[torch.from_numpy(positions)].to(device)
            parts: dict[str, list[torch.Tensor]] = {m: [] for m in methods}
            for start in range(0, len(positions), batch_size):
                batch_maps = fold_model.engine(images[start : start + batch_size], target, methods).maps
                for m in methods:
                    parts[m].append(batch_maps[m].detach())
            maps = {m: torch.cat(v) for m, v in parts.items()}
            on_native = {m: on_grid(v, native) for m, v in maps.items()}
            reference = case.reference[torch.from_numpy(positions)].to(device)
            columns = measure_maps(fold_model.model, images, maps, target, spec, batch_size, reference, on_native)
            block = pd.DataFrame(columns)
            block.insert(0, "slice", case.inputs.slice_index.numpy()[positions][block.pop("sample").to_numpy()])
            block["model"] = fold_model.name
            blocks.append(block)
    frame = pd.concat(blocks, ignore_index=True) if blocks else pd.DataFrame({c: [] for c in FAITHFULNESS_COLUMNS})
    frame["case"], frame["fold"] = case.case_id, fold
    frame = frame.astype({"slice": np.int64, "fold": np.int64})[FAITHFULNESS_COLUMNS]
    frame.attrs["faithfulness"] = {
        "settings": asdict(spec),
        "fingerprint": settings_fingerprint(spec),
        "seconds": round(timings.seconds["faithfulness"], 3),  # also in the unit's marker when computed with it
    }
    return frame


def faithfulness_path(output: Path, case_id: str, fold: int) -> Path:
    """The faithfulness table of unit (case, fold)."""
    return unit_paths(output, case_id, fold)["faithfulness"]


def write_faithfulness(output: Path, case_id: str, fold: int, frame: pd.DataFrame) -> Path:
    """Write a unit's faithfulness table atomically (its settings travel in its Parquet metadata)."""
    return write_parquet(frame, faithfulness_path(output, case_id, fold))


def faithfulness_current(output: Path, case_id: str, fold: int, spec: FaithfulnessSpec) -> bool:
    """Whether unit (case, fold) has a faithfulness table computed with ``spec``'s settings."""
    path = faithfulness_path(output, case_id, fold)
    if not path.exists():
        return False
    import pyarrow.parquet as pq

    metadata = pq.read_schema(path).metadata or {}
    attrs = json.loads(metadata.get(b"PANDAS_ATTRS", b"{}"))
    return attrs.get("faithfulness", {}).get("fingerprint") == settings_fingerprint(spec)


def gather_faithfulness(output: Path, markers: list[dict], spec: FaithfulnessSpec) -> pd.DataFrame:
    """The faithfulness rows of every held-out unit among ``markers``; NotReadyError when one lacks a
    table of ``spec``'s settings (run the ``cams`` stage: it adds them without recomputing the units)."""
    held_out = [(m["case"], m["fold"]) for m in markers if m["role"] == "test"]
    stale = [unit for unit in held_out if not faithfulness_current(output, *unit, spec)]
    if stale:
        raise NotReadyError(
            f"{output}: {len(stale)} held-out units have no faithfulness table with the configured settings "
            f"(e.g. case {stale[0][0]}, fold {stale[0][1]}); run the 'cams' stage (of every shard) first"
        )
    frames = [pd.read_parquet(faithfulness_path(output, *unit)) for unit in held_out]
    frames = [f for f in frames if len(f)]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame({c: [] for c in FAITHFULNESS_COLUMNS})


def faithfulness_section(output: Path, rows: pd.DataFrame, spec: FaithfulnessSpec) -> dict[str, pd.DataFrame]:
    """Write ``faithfulness.csv`` and ``faithfulness.parquet`` (per model x method, case-level bootstrap
    intervals: :func:`~WSSSCamLib.report.faithfulness_table`) and ``faithfulness_slices.parquet`` (the
    ``rows`` of :func:`gather_faithfulness`); returns the report's titled table, its caption stating the settings."""
    from .. import report
    from ..atomic import write_text

    table = report.faithfulness_table(rows)
    write_parquet(rows, output / "faithfulness_slices.parquet")
    write_parquet(table, output / "faithfulness.parquet")
    write_text(output / "faithfulness.csv", table.to_csv(index=False))
    drawn = f"up to {spec.per_case}" if spec.per_case is not None else "all"
    caption = (
        f"Faithfulness and pointing on the held-out cases: {drawn} {spec.slices} slices per case (seed {spec.seed}); "
        f"deletion/insertion {spec.steps} steps, removed pixels -> {spec.baseline}, insertion from the blurred slice "
        f"(sigma 5 px); average drop / increase of x * L; pointing tolerance {spec.tolerance:g} px, energy inside the reference {spec.energy_region}; "
        "mean of case means [case-level bootstrap 95 % CI]; deletion AUC and average drop: lower is better"
    )
    return {caption: report.faithfulness_display(table)}
