"""``wssscam predict``: trained checkpoints applied to new volumes, CAMs and segmentations written to
standard files in the input's geometry, resumable per case.

Per case, under ``<out>/<case>/``:

* ``cams/<model>__<method>.nii.gz`` (or ``.nrrd``): each CAM as a float32 volume in [0, 1] on the
  input's voxel grid (same shape, spacing, origin and direction);
* ``cams/<model>__probability.nii.gz`` (or ``.nrrd``), for a segmentation network (a card whose
  architecture is in :data:`~WSSSCamLib.models.zoo.SEGMENTATION_ARCHITECTURES`): its foreground
  probability 1 - p(background) as float32 on the input's grid (:mod:`WSSSCamLib.inference.segmentation`);
* ``<case>.seg.nrrd``: every segment (thresholded maps, then the ensemble, then each segmentation
  network's own segment "<model> segmentation", its argmax) as a 3D Slicer segmentation;
  ``masks/<segment>.nii.gz`` (or ``.nrrd``): each segment as a 0/1 label map with a
  ``.labels.json`` naming it; for DICOM input also ``<case>.seg.dcm``, a DICOM SEG referring to the
  source images (needs highdicom);
* ``result.json``: written last, it commits the case: the settings' fingerprint, the files, the
  per-slice target-class probabilities of each model, volume metrics (with a reference) and
  agreement rows, timings. A case whose ``result.json`` holds the same fingerprint is not redone.

CAM methods go to the networks they explain: the classifier methods (grad-cam, ...) to the
classifiers, the Seg- methods to the segmentation networks; a segmentation network needs none (its
own segment is always written), a classifier needs at least one. The threshold, ensemble,
negative-slice, refinement and test-time augmentation settings act on the CAMs only.

After the cases: ``metrics.csv`` (case x segment: Dice, IoU, volumes against the reference),
``agreement.csv`` and ``summary.json`` gather every committed case of the run.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..atomic import atomic_path, remove_stale_temporaries, write_text
from ..cams import resolve_methods
from ..data.readers import write_volume
from ..data.recipe import recipe_from_card
from ..data.segmentation_files import SegmentationFileError, write_dicom_seg, write_label_map, write_seg_nrrd
from ..data.volume import Volume
from ..devices import resolve_device
from ..inference import TestTimeAugmentation, iter_volume_cams, iter_volume_segmentation
from ..inference.segmentation import check_segmentation_card
from ..metrics.volume_measures import agreement_rows, measure_masks
from ..models.card import ModelCard
from ..paths import output_path
from ..training.checkpoint import CheckpointError, card_path, file_sha256, load_checkpoint
from .inputs import LoadedInput, PredictCase, PredictInputError, load_input
from .progress import Progress
from .segments import SegmentationRule, Segments, member_key, network_segment_name, segment_volumes

RESULT_FILE = "result.json"
RESULT_FORMAT = 1
"""Version of the case outputs' layout; part of the fingerprint, so outputs of another layout are redone."""
SEGMENTATION_FORMAT = 1
"""Version of the segmentation networks' own outputs; in the fingerprint only of runs with such a network
(cases of classifiers alone keep their fingerprint)."""
CAM_FORMATS = ("auto", "nii.gz", "nrrd")
_MODEL_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")


@dataclass(frozen=True)
class PredictOptions:
    """Settings of a prediction run.

    ``target_class``: index or class name (default: each model's last class, the "abnormal" class
    of a binary classifier). ``layers``: target layer(s) (default: the card's; several are fused by
    Layer-CAM). ``region_box``: pixel set M of the Seg- methods as an IJK box ``(i0, j0, k0, i1, j1,
    k1)``, half-open, used for cases without a region file. ``cam_format``: ``auto`` writes NIfTI
    for NIfTI input and NRRD otherwise. ``augmentation``: multi-scale / flip fusion of the maps.
    ``methods`` may be empty when every model is a segmentation network (each model gets the methods
    that explain it: :meth:`PredictModel.methods`).
    """

    methods: tuple[str, ...] = ("grad-cam",)
    rule: SegmentationRule = field(default_factory=SegmentationRule)
    target_class: int | str | None = None
    layers: tuple[str, ...] | None = None
    region_box: tuple[int, int, int, int, int, int] | None = None
    batch_size: int = 16
    device: str = "auto"
    cam_format: str = "auto"
    augmentation: TestTimeAugmentation = field(default_factory=TestTimeAugmentation)

    def __post_init__(self) -> None:
        methods = tuple(m.name for m in resolve_methods(list(self.methods))) if self.methods else ()
        object.__setattr__(self, "methods", methods)
        if self.cam_format not in CAM_FORMATS:
            raise ValueError(f"cam_format: {self.cam_format!r} is not one of {', '.join(CAM_FORMATS)}")
        if self.batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.region_box is not None and (
            len(self.region_box) != 6
            or any(v < 0 for v in self.region_box)
            or any(self.region_box[a] >= self.region_box[a + 3] for a in range(3))
        ):
            raise ValueError(
                f"region_box: expected i0,j0,k0,i1,j1,k1 with i0 < i1, j0 < j1, k0 < k1, got {self.region_box}"
            )

    @property
    def needs_region(self) -> bool:
        return any(m.startswith("seg-") for m in self.methods)

    def describe(self) -> dict:
        """What the outputs depend on (the fingerprint; device and batch size are left out)."""
        return {
            "methods": list(self.methods),
            "rule": self.rule.describe(),
            "target_class": self.target_class,
            "layers": list(self.layers) if self.layers else None,
            "region_box": self.region_box,
            "cam_format": self.cam_format,
            **({"augmentation": self.augmentation.describe()} if not self.augmentation.is_identity else {}),
        }


@dataclass
class PredictModel:
    """A loaded checkpoint: its name in outputs, file, network (eval mode, on the run's device), card, and the
    SHA-256 of the checkpoint and of its card file (both part of the outputs' fingerprint)."""

    name: str
    path: Path
    network: nn.Module
    card: ModelCard
    sha256: str
    card_sha256: str = ""

    @property
    def is_segmentation(self) -> bool:
        """A segmentation network: its own segment is written, and only the Seg- methods explain it."""
        return self.card.is_segmentation

    @property
    def is_stack_network(self) -> bool:
        """A 3D segmentation network over a slice recipe's stack of slices (the study's ``dims: 3`` U-Nets): it
        gives its own segment; the Seg- methods, which run slice by slice, do not explain it."""
        return self.card.is_stack_segmentation

    def methods(self, methods: Sequence[str]) -> tuple[str, ...]:
        """The CAM methods of ``methods`` that explain this network: the Seg- methods for a 2D segmentation
        network, none for a 3D stack network, the others for a classifier."""
        if self.is_stack_network:
            return ()
        return tuple(m for m in methods if m.startswith("seg-") == self.is_segmentation)

    def target_index(self, target: int | str | None) -> int:
        """The class index of ``target`` (index, class name, or None = the last class) for this model."""
        names = self.card.class_names
        if target is None:
            return self.card.num_classes - 1
        if isinstance(target, str) and not target.lstrip("-").isdigit():
            if target not in names:
                raise ValueError(f"{self.path}: no class '{target}'; the model's classes are {names}")
            return names.index(target)
        index = int(target)
        if not 0 <= index < self.card.num_classes:
            raise ValueError(
                f"{self.path}: target class {index} is outside the model's classes 0..{self.card.num_classes - 1} {names}"
            )
        return index


@dataclass
class PredictSummary:
    """What a run did: the cases computed now, the cases already done, the output folder and files."""

    out: Path
    computed: list[str]
    skipped: list[str]
    metrics: pd.DataFrame
    agreement: pd.DataFrame
    seconds: float

    def lines(self) -> list[str]:
        """A short human summary."""
        text = [
            f"{len(self.computed)} case(s) computed, {len(self.skipped)} already done -> {self.out} ({self.seconds:.1f} s)"
        ]
        if not self.metrics.empty:
            means = self.metrics.groupby("result", sort=False)[["dice", "iou"]].mean()
            for result, row in means.iterrows():
                text.append(
                    f"  {result}: mean Dice {row['dice']:.3f}, mean IoU {row['iou']:.3f} over {len(self.metrics.query('result == @result'))} case(s)"
                )
        return text


def _split_spec(spec: str | Path | tuple[str, str | Path]) -> tuple[str | None, Path]:
    """``NAME=PATH`` (when PATH exists or NAME is a plain name), a plain path, or a (name, path) pair."""
    if isinstance(spec, tuple):
        return spec[0], Path(spec[1])
    text = str(spec)
    if "=" in text and not Path(text).exists():
        name, path = text.split("=", 1)
        if _MODEL_NAME.fullmatch(name):
            return name, Path(path)
    return None, Path(text)


def load_models(
    checkpoints: Sequence[str | Path | tuple[str, str | Path]], device: str | torch.device = "auto"
) -> list[PredictModel]:
    """Load checkpoints (``weights_only=True``) with their model cards.

    Each entry is a path, ``NAME=PATH`` or ``(name, path)``; without a name a model is called by its
    architecture (``small-cnn``, ``small-cnn-2``, ... when several share one). Names must be unique.
    """
    if not checkpoints:
        raise ValueError("no checkpoint given (--checkpoint PATH)")
    device = resolve_device(device)
    models: list[PredictModel] = []
    for spec in checkpoints:
        name, path = _split_spec(spec)
        network, card = load_checkpoint(path, device=str(device))
        if card.is_segmentation:
            try:
                check_segmentation_card(card, str(card_path(path)))
            except ValueError as error:
                raise CheckpointError(str(error)) from None
        if name is None:
            taken = {m.name for m in models}
            name, number = card.architecture, 2
            while name in taken:
                name, number = f"{card.architecture}-{number}", number + 1
        elif name in {m.name for m in models}:
            raise ValueError(f"{path}: model name '{name}' is used twice")
        models.append(PredictModel(name, path, network, card, file_sha256(path), file_sha256(card_path(path))))
    axes = {m.card.slice_axis if not m.card.recipe else m.card.recipe.get("axis", "K") for m in models}
    if len(axes) > 1:
        raise ValueError(f"the models slice along different axes {sorted(axes)}; predict them in separate runs")
    return models


def case_fingerprint(case: PredictCase, models: Sequence[PredictModel], options: PredictOptions) -> str:
    """SHA-256 of what a case's outputs depend on: its input files, the checkpoints and the settings."""
    payload = {
        "case": case.describe(),
        "models": [[m.name, m.sha256, m.card_sha256] for m in models],
        "options": options.describe(),
        "format": RESULT_FORMAT,
    }
    if any(m.is_segmentation for m in models):
        payload["segmentation_format"] = SEGMENTATION_FORMAT
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def safe_file_name(name: str) -> str:
    """A file name for a segment or model/method: runs of other characters become '_', no leading dot."""
    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name).lstrip(".") or "_"


def _cam_suffix(case: PredictCase, options: PredictOptions) -> str:
    if options.cam_format != "auto":
        return "." + options.cam_format
    return ".nii.gz" if case.images[0].name.lower().endswith((".nii", ".nii.gz")) else ".nrrd"


def _region(case: PredictCase, loaded: LoadedInput, options: PredictOptions) -> np.ndarray | None:
    """The Seg- pixel set M of a case (only when a Seg- method is asked for): its region file, else
    the options' IJK box, else None."""
    if not options.needs_region:
        return None
    if loaded.region is not None:
        return loaded.region
    if options.region_box is None:
        return None
    i0, j0, k0, i1, j1, k1 = options.region_box
    region = np.zeros(loaded.image.shape_kji, dtype=bool)
    region[k0:k1, j0:j1, i0:i1] = True
    if not region.any():
        raise PredictInputError(
            f"{case.images[0]}: region box {options.region_box} lies outside the volume (I, J, K sizes "
            f"{loaded.image.shape_kji[::-1]})"
        )
    return region


class _Stopwatch:
    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    def add(self, stage: str, started: float) -> None:
        self.seconds[stage] = self.seconds.get(stage, 0.0) + time.perf_counter() - started


def in_card_order(image: Volume, case: PredictCase, model: PredictModel, progress: Progress) -> Volume:
    """The case's channels in the model card's order when the case names them: unchanged when the
    names are in the card's order, reordered when they are the card's names in another order; a
    warning when the names differ (then the given order is used)."""
    names = case.channel_names
    if not names or image.channels == 1:
        return image
    expected = list(model.card.channel_names[: len(names)])
    if list(names) == expected:
        return image
    if sorted(names) == sorted(expected):
        order = [list(names).index(name) for name in expected]
        return Volume(image.array[order], image.ijk_to_ras, image.source)
    progress.event(
        "warning",
        case=case.case_id,
        message=f"{case.images[0]}: channels {list(names)} are not the channels "
        f"{expected} that {model.path} was trained on; they are used in the given order",
    )
    return image


def _passes(models: Sequence[PredictModel], options: PredictOptions) -> list[tuple[PredictModel, str]]:
    """The passes over a case, in order: (model, "cams") for every model with CAM methods, then
    (model, "segmentation") for every segmentation network."""
    cam_passes = [(m, "cams") for m in models if m.methods(options.methods)]
    return cam_passes + [(m, "segmentation") for m in models if m.is_segmentation]


def _compute_maps(
    case: PredictCase,
    loaded: LoadedInput,
    models: Sequence[PredictModel],
    options: PredictOptions,
    progress: Progress,
    span: tuple[float, float],
) -> tuple[dict, dict]:
    """Every model's CAMs of one case (model name -> VolumeCams) and every segmentation network's own
    segmentation (model name -> VolumeSegmentation), reporting a ``batch`` event per batch."""
    region = _region(case, loaded, options)
    cams, segmentations = {}, {}
    passes = _passes(models, options)
    for number, (model, kind) in enumerate(passes):
        image = in_card_order(loaded.image, case, model, progress)
        if kind == "segmentation":
            results = iter_volume_segmentation(image, model.network, model.card, options.batch_size, options.device)
            found = segmentations
        else:
            results = iter_volume_cams(
                image,
                model.network,
                model.card,
                list(model.methods(options.methods)),
                model.target_index(options.target_class),
                list(options.layers) if options.layers else None,
                region if model.is_segmentation else None,  # the pixel set M of the Seg- methods
                options.batch_size,
                options.device,
                options.augmentation,
            )
            found = cams
        for done, total, result in results:
            if result is None:
                share = (number + done / total) / len(passes)
                progress.event(
                    "batch",
                    case=case.case_id,
                    model=model.name,
                    done=done,
                    total=total,
                    fraction=span[0] + share * (span[1] - span[0]),
                )
            else:
                found[model.name] = result
    return cams, segmentations


def _write_outputs(
    case: PredictCase,
    loaded: LoadedInput,
    cams: dict,
    segmentations: dict,
    segments: Segments,
    folder: Path,
    options: PredictOptions,
    progress: Progress,
) -> dict:
    """Write CAM volumes, segment label maps, the .seg.nrrd and (DICOM input) the DICOM SEG; the files,
    relative to ``folder``. The files are independent and compressing them releases the GIL, so
    they are written by a few threads at once (each file still atomically)."""
    affine = loaded.image.ijk_to_ras
    suffix = _cam_suffix(case, options)
    several = len(cams) > 1
    files: dict = {
        "cams": {},
        "probabilities": {},
        "masks": {},
        "segmentation": f"{case.case_id}.seg.nrrd",
        "dicom_seg": None,
    }
    jobs = []
    for model, result in cams.items():
        for method, maps in result.maps.items():
            relative = f"cams/{safe_file_name(model)}__{safe_file_name(method)}{suffix}"
            jobs.append(partial(write_volume, maps.numpy(), affine, folder / relative))
            files["cams"][member_key(model, method, several)] = relative
    for model, result in segmentations.items():
        relative = f"cams/{safe_file_name(model)}__probability{suffix}"
        jobs.append(partial(write_volume, result.probability.numpy(), affine, folder / relative))
        files["probabilities"][model] = relative
    masks = {name: mask.cpu().numpy() for name, mask in segments.masks.items()}
    used: set[str] = set()
    for name, mask in masks.items():
        stem = safe_file_name(name)
        while stem in used:
            stem += "_"
        used.add(stem)
        files["masks"][name] = f"masks/{stem}{suffix}"
        jobs.append(partial(write_label_map, {name: mask}, affine, folder / files["masks"][name]))
    jobs.append(partial(write_seg_nrrd, masks, affine, folder / files["segmentation"]))
    with ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool:
        for future in [pool.submit(job) for job in jobs]:
            future.result()
    if loaded.dicom_files:
        try:
            files["dicom_seg"] = f"{case.case_id}.seg.dcm"
            write_dicom_seg(masks, affine, loaded.dicom_files, folder / files["dicom_seg"])
        except SegmentationFileError as error:
            files["dicom_seg"] = None
            progress.event("warning", case=case.case_id, message=f"DICOM SEG not written: {error}")
    return files


def _listed(files: dict) -> set[str]:
    """Every file (relative to the case folder) a result record lists, label-name sidecars included."""
    out = {v for group in ("cams", "probabilities", "masks") for v in files.get(group, {}).values()}
    out |= {files.get(k) for k in ("segmentation", "dicom_seg") if files.get(k)}
    out |= {
        p[: -len(".nii.gz")] + ".labels.json" if p.endswith(".nii.gz") else p.rsplit(".", 1)[0] + ".labels.json"
        for p in files.get("masks", {}).values()
    }
    return out


def _remove_stale(folder: Path, old: dict | None, new: dict) -> None:
    """After a case is committed: delete what an earlier run listed and this one did not write, every
    file under ``cams/`` and ``masks/`` this run did not write (left by a run killed before it
    committed), and temporaries of killed writers. Nothing outside ``folder`` is touched."""
    remove_stale_temporaries(folder)
    keep = _listed(new["files"])
    stale = (_listed(old.get("files", {})) if old else set()) - keep
    for sub in ("cams", "masks"):
        if (folder / sub).is_dir():
            stale |= {f"{sub}/{p.name}" for p in (folder / sub).iterdir() if p.is_file()} - keep
    root = folder.resolve()
    for relative in stale:
        target = (folder / relative).resolve()
        if target.is_relative_to(root) and target != root / RESULT_FILE:
            target.unlink(missing_ok=True)


def read_result(folder: Path) -> dict | None:
    """A case's committed ``result.json``, or None when missing or unreadable (then it is redone)."""
    try:
        record = json.loads((folder / RESULT_FILE).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    return record if isinstance(record, dict) else None


def _refinement_images(
    loaded: LoadedInput, models: Sequence[PredictModel], options: PredictOptions
) -> torch.Tensor | None:
    """The case normalised as the first model's recipe normalises it (C x K x J x I), when a
    refinement step looks at the image; else None."""
    if not any(getattr(step, "needs_images", False) for step in options.rule.refinement.steps):
        return None
    image, _ = recipe_from_card(models[0].card).preprocess()(loaded.image, None)
    return torch.from_numpy(image.array if image.array.ndim == 4 else image.array[None])


def predict_case(
    case: PredictCase,
    models: Sequence[PredictModel],
    options: PredictOptions,
    out: Path,
    progress: Progress,
    span: tuple[float, float] = (0.0, 1.0),
) -> dict:
    """Compute and write one case (see the module docstring); returns its result record."""
    watch = _Stopwatch()
    folder = output_path(out, case.case_id)
    started = time.perf_counter()
    loaded = load_input(case)
    watch.add("read", started)
    started = time.perf_counter()
    cams, segmentations = _compute_maps(case, loaded, models, options, progress, span)
    watch.add("cams", started)
    started = time.perf_counter()
    segments = (
        segment_volumes(cams, options.rule, _refinement_images(loaded, models, options)) if cams else Segments({}, {})
    )
    for model, result in segmentations.items():
        segments.masks[network_segment_name(model)] = result.mask
    metrics = (
        measure_masks(segments.masks, loaded.reference, loaded.image.ijk_to_ras) if loaded.reference is not None else []
    )
    agreement = agreement_rows(segments.members)
    watch.add("masks+metrics", started)
    started = time.perf_counter()
    old = read_result(folder)
    (folder / RESULT_FILE).unlink(missing_ok=True)  # uncommitted while its files are rewritten
    files = _write_outputs(case, loaded, cams, segmentations, segments, folder, options, progress)
    watch.add("write", started)
    by_name = {m.name: m for m in models}
    record = {
        "case": case.case_id,
        "fingerprint": case_fingerprint(case, models, options),
        "inputs": [str(p) for p in case.images],
        "reference": str(case.reference) if case.reference else None,
        "shape_kji": list(loaded.image.shape_kji),
        "ijk_to_ras": loaded.image.ijk_to_ras.tolist(),
        "files": files,
        "segments": list(segments.masks),
        "members": {name: list(member) for name, member in zip(segments.masks, segments.members)},
        "models": {
            name: {
                "checkpoint": str(by_name[name].path),
                "target_class": result.target_class,
                "cams": {method: files["cams"][member_key(name, method, len(cams) > 1)] for method in result.maps},
                "class_name": by_name[name].card.class_names[result.target_class],
                "axis": result.axis,
                "probabilities": [round(float(p), 6) for p in result.probabilities],
            }
            for name, result in cams.items()
        },
        "segmentations": {
            name: {
                "checkpoint": str(by_name[name].path),
                "segment": network_segment_name(name),
                "probability": files["probabilities"][name],
                "class_names": list(by_name[name].card.class_names),
                "axis": result.axis,
                "rule": "softmax resized bilinearly to each slice's grid; segment: argmax is not class 0 (background); "
                "probability: 1 - p(background)",
            }
            for name, result in segmentations.items()
        },
        "metrics": [{"case": case.case_id, **row} for row in metrics],
        "agreement": [{"case": case.case_id, **row} for row in agreement],
        "seconds": watch.seconds,
    }
    write_text(folder / RESULT_FILE, json.dumps(record, indent=1))
    _remove_stale(folder, old, record)
    return record


def _write_table(rows: list[dict], path: Path) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    with atomic_path(path) as temporary:
        frame.to_csv(temporary, index=False)
    return frame


def _check_methods(models: Sequence[PredictModel], options: PredictOptions) -> None:
    """Refuse, before any work, a classifier without a classifier CAM method, Seg- methods without a
    segmentation network to explain, and a target class a model with CAMs does not have."""
    seg_methods = [m for m in options.methods if m.startswith("seg-")]
    explained = [m for m in models if m.is_segmentation and not m.is_stack_network]
    for model in models:
        if model.methods(options.methods):
            model.target_index(options.target_class)
        if model.is_stack_network and seg_methods and not explained:
            raise PredictInputError(
                f"{model.path}: {', '.join(seg_methods)} run slice by slice and do not explain a 3D U-Net over the "
                "stack of slices; leave them out (its own segment is written without them)"
            )
        if model.is_segmentation:
            continue
        if seg_methods and (not model.methods(options.methods) or not any(m.is_segmentation for m in models)):
            raise PredictInputError(
                f"{model.path}: {', '.join(seg_methods)} explain segmentation networks; {model.card.architecture} "
                "is a classifier (use grad-cam, layer-cam, ... for classifiers)"
            )
        if not model.methods(options.methods):
            raise PredictInputError(
                f"{model.path}: {model.card.architecture} is a classifier and needs a CAM method (--methods grad-cam, ...)"
            )


def _check_ensemble(options: PredictOptions, members: int) -> None:
    """Refuse an ensemble that cannot be formed, before any work: fewer than two members, or
    per-member thresholds that do not match the members (models x methods)."""
    rule = options.rule
    if rule.ensemble is None:
        if rule.member_thresholds is not None:
            raise ValueError("member thresholds given without an ensemble rule (--ensemble)")
        return
    if members < 2:
        raise ValueError(f"the '{rule.ensemble}' ensemble needs at least two members (models x methods), got {members}")
    expected = 1 if rule.ensemble == "mean" else members
    if rule.member_thresholds is not None and len(rule.member_thresholds) != expected:
        raise ValueError(
            f"{len(rule.member_thresholds)} member thresholds for {expected} ensemble "
            f"{'map (mean of the maps)' if expected == 1 else 'members (models x methods, in that order)'}"
        )


def predict(
    cases: Sequence[PredictCase],
    models: Sequence[PredictModel],
    out: str | Path,
    options: PredictOptions,
    progress: Progress | None = None,
    shard: tuple[int, int] = (0, 1),
) -> PredictSummary:
    """Predict every case (or the ``shard`` = (i, n) i-th of n disjoint parts), skipping cases already
    committed with the same fingerprint; then gather the committed cases' tables."""
    progress = progress or Progress()
    out = Path(out)
    run_started = time.perf_counter()
    if not cases:
        raise PredictInputError("no input cases")
    _check_methods(models, options)
    if options.needs_region and options.region_box is None and any(c.region is None for c in cases):
        missing = next(c for c in cases if c.region is None)
        raise PredictInputError(
            f"{missing.images[0]}: the Seg- methods need a region (a region mask per case or --box)"
        )
    _check_ensemble(options, sum(len(m.methods(options.methods)) for m in models))
    mine = [case for number, case in enumerate(cases) if number % shard[1] == shard[0]]
    progress.event(
        "start",
        cases=len(mine),
        models=[m.name for m in models],
        methods=list(options.methods),
        out=str(out),
        fraction=0.0,
    )
    computed, skipped = [], []
    for number, case in enumerate(mine):
        span = (number / len(mine), (number + 1) / len(mine))
        folder = out / case.case_id
        old = read_result(folder)
        if old is not None and old.get("fingerprint") == case_fingerprint(case, models, options):
            skipped.append(case.case_id)
            progress.event("case_done", case=case.case_id, folder=str(folder), skipped=True, fraction=span[1])
            continue
        progress.event("case", case=case.case_id, index=number, of=len(mine), fraction=span[0])
        record = predict_case(case, models, options, out, progress, span)
        computed.append(case.case_id)
        progress.event(
            "case_done",
            case=case.case_id,
            folder=str(folder),
            skipped=False,
            seconds=sum(record["seconds"].values()),
            fraction=span[1],
        )
    summary = gather(cases, models, options, out)
    summary.computed, summary.skipped = computed, skipped
    summary.seconds = time.perf_counter() - run_started
    progress.event("done", out=str(out), computed=computed, skipped=skipped, seconds=summary.seconds, fraction=1.0)
    return summary


def gather(
    cases: Sequence[PredictCase], models: Sequence[PredictModel], options: PredictOptions, out: Path
) -> PredictSummary:
    """Write ``metrics.csv``, ``agreement.csv`` and ``summary.json`` from every case committed with
    the current settings (cases of other shards included once they are done)."""
    records = []
    for case in cases:
        record = read_result(out / case.case_id)
        if record is not None and record.get("fingerprint") == case_fingerprint(case, models, options):
            records.append(record)
    metrics = _write_table([row for r in records for row in r["metrics"]], out / "metrics.csv")
    agreement = _write_table([row for r in records for row in r["agreement"]], out / "agreement.csv")
    summary = {
        "options": options.describe(),
        "models": [
            {
                "name": m.name,
                "checkpoint": str(m.path),
                "sha256": m.sha256,
                "architecture": m.card.architecture,
                "segmentation_network": m.is_segmentation,
            }
            for m in models
        ],
        "cases": {r["case"]: str(out / r["case"] / RESULT_FILE) for r in records},
        "pending": [c.case_id for c in cases if c.case_id not in {r["case"] for r in records}],
    }
    write_text(out / "summary.json", json.dumps(summary, indent=1))
    return PredictSummary(out, [], [], metrics, agreement, 0.0)
