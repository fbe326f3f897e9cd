"""Datasets of cases: Decathlon / nnU-Net layout, or a folder of volumes with a CSV of labels.

A :class:`Case` names the files of one patient/case: one image file per channel (modality), an
optional reference mask, an optional case-level label and optional external measures (such as
Syed et al. 2023's liquid loss). :func:`load_case` reads them into volumes and checks that they agree.

Bad input is refused with :class:`DatasetError` (or :class:`VolumeReadError` for a file) naming the file
and the problem, before any training: case ids that are not plain file names or appear twice, file
references leading outside the dataset folder (unless ``allow_outside`` is given), a ``dataset.json``
of the wrong shape, label values that are not integers of the declared label set, a channel count other
than the declared one, image/label grids that differ, and all-zero channels (an error: such a channel
carries no information and its normalisation is undefined).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..errors import UserError
from ..paths import UnsafePathError, case_id_problem, dataset_file
from .readers import VolumeReadError, read_volume
from .volume import Volume

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")


class DatasetError(UserError, ValueError):
    """A dataset description is inconsistent; the message names the file and the problem."""


@dataclass
class Case:
    """One case: ``images`` (one path per channel), ``mask`` (reference segmentation or None),
    ``label`` (case-level class or None), ``measures`` (name -> float)."""

    case_id: str
    images: list[Path]
    mask: Path | None = None
    label: int | None = None
    measures: dict[str, float] = field(default_factory=dict)
    label_values: tuple[int, ...] | None = None  # the mask values the dataset declares (None: not checked)
    channels: int | None = None  # the channel count the dataset declares (None: not checked)


@dataclass
class Dataset:
    """Cases plus the names of the channels and classes."""

    root: Path
    cases: list[Case]
    channel_names: list[str]
    class_names: list[str]

    def channel_index(self, channel: int | str) -> int:
        """A channel given by name (as in ``channel_names``) or by index; KeyError naming the choices."""
        if isinstance(channel, int) or str(channel).isdigit():
            if 0 <= int(channel) < len(self.channel_names):
                return int(channel)
        elif channel in self.channel_names:
            return self.channel_names.index(channel)
        raise KeyError(
            f"no channel '{channel}'; the channels of {self.root} are {self.channel_names} "
            f"(name or index 0..{len(self.channel_names) - 1})"
        )

    def subset(self, case_ids: Iterable[str]) -> Dataset:
        """The same dataset restricted to ``case_ids`` (in the dataset's order); nothing is read."""
        wanted = set(case_ids)
        return Dataset(self.root, [c for c in self.cases if c.case_id in wanted], self.channel_names, self.class_names)

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise KeyError(f"{self.root}: no case '{case_id}'")


def _case_id(path_text: str) -> str:
    name = Path(path_text).name
    for suffix in VOLUME_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _check_case_ids(cases: list[Case], where: str) -> None:
    """Refuse case ids that cannot name files (see :func:`~WSSSCamLib.paths.case_id_problem`) or appear twice."""
    for case in cases:
        problem = case_id_problem(case.case_id)
        if problem:
            raise UnsafePathError(f"{where}: {problem}")
    ids = [c.case_id for c in cases]
    repeated = sorted({i for i in ids if ids.count(i) > 1})
    if repeated:
        raise DatasetError(f"{where}: case ids must be unique; repeated: {repeated}")


def _declared_labels(labels: object, description: Path) -> dict[str, str]:
    """``labels`` of dataset.json as value -> name (Decathlon: "0": "background"; nnU-Net v2: "background": 0)."""
    if not isinstance(labels, dict) or not labels:
        raise DatasetError(f"{description}: 'labels' must be a mapping of label values and names, got {labels!r}")
    if all(isinstance(v, int) and not isinstance(v, bool) for v in labels.values()):  # nnU-Net v2: name -> value
        labels = {str(v): k for k, v in labels.items()}
    bad = [key for key in labels if not str(key).lstrip("-").isdigit()]
    if bad:
        raise DatasetError(f"{description}: 'labels' keys must be integer label values, got {bad}")
    return {str(k): str(v) for k, v in labels.items()}


def read_decathlon(root: str | Path, allow_outside: bool = False) -> Dataset:
    """A Decathlon/nnU-Net dataset: ``dataset.json``, ``imagesTr/<case>_000k.nii.gz``, ``labelsTr/<case>.nii.gz``.

    An entry's image may also be one 4D file. Class names come from ``labels`` (Decathlon) and
    channel names from ``modality`` / ``channel_names`` (nnU-Net v2). Image and label references must
    stay inside ``root`` unless ``allow_outside`` (symlinked files inside ``root`` are fine).
    """
    root = Path(root)
    description = root / "dataset.json"
    try:
        meta = json.loads(description.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{description}: missing (not a Decathlon/nnU-Net dataset folder)") from None
    except json.JSONDecodeError as error:
        raise DatasetError(f"{description}: invalid JSON ({error})") from None
    except (OSError, UnicodeDecodeError) as error:
        raise DatasetError(f"{description}: cannot read ({error})") from None
    if not isinstance(meta, dict):
        raise DatasetError(
            f"{description}: expected a JSON object (name, modality, labels, training), got a {type(meta).__name__}"
        )
    channels = meta.get("modality") or meta.get("channel_names") or {"0": "image"}
    if not isinstance(channels, dict) or not all(str(k).isdigit() for k in channels):
        raise DatasetError(
            f"{description}: 'modality'/'channel_names' must map channel indices to names, got {channels!r}"
        )
    channel_names = [str(channels[key]) for key in sorted(channels, key=int)]
    labels = _declared_labels(meta.get("labels", {"0": "background", "1": "foreground"}), description)
    class_names = [labels[key] for key in sorted(labels, key=int)]
    label_values = tuple(sorted(int(k) for k in labels))
    entries = meta.get("training")
    if entries is None:  # nnU-Net v2 lists no cases: take the label files
        entries = [
            {"image": f"./imagesTr/{p.name}", "label": f"./labelsTr/{p.name}"}
            for p in sorted((root / "labelsTr").glob("*.nii.gz"))
        ]
    if not isinstance(entries, list):
        raise DatasetError(
            f"{description}: 'training' must be a list of {{image, label}} entries, got {type(entries).__name__}"
        )
    cases = []
    for index, entry in enumerate(entries):
        where = f"{description}: training[{index}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("image"), str):
            raise DatasetError(f'{where}: expected {{"image": ..., "label": ...}} with an image path, got {entry!r}')
        image = dataset_file(root, entry["image"], f"{where}.image", allow_outside)
        case_id = _case_id(entry["image"])
        problem = case_id_problem(case_id)
        if problem:
            raise UnsafePathError(f"{where}.image: {problem}")
        if image.exists():
            images = [image]
        else:
            suffix = image.name[len(case_id) :]
            images = [image.with_name(f"{case_id}_{k:04d}{suffix}") for k in range(len(channel_names))]
        missing = [str(p) for p in images if not p.exists()]
        if missing:
            raise DatasetError(f"{description}: case '{case_id}' has no image file {missing[0]}")
        label = entry.get("label")
        if label is not None and not isinstance(label, str):
            raise DatasetError(f"{where}.label: expected a path, got {label!r}")
        mask = dataset_file(root, label, f"{where}.label", allow_outside) if label else None
        if mask is not None and not mask.exists():
            raise DatasetError(f"{description}: case '{case_id}' has no label file {mask}")
        cases.append(Case(case_id, images, mask, label_values=label_values, channels=len(channel_names)))
    if not cases:
        raise DatasetError(f"{description}: no training cases")
    _check_case_ids(cases, str(description))
    return Dataset(root, cases, channel_names, class_names)


def read_csv_dataset(folder: str | Path, table: str | Path, class_names: list[str] | None = None) -> Dataset:
    """A folder of volumes plus a CSV with columns ``case``, ``label`` and optional numeric measures.

    Each case's image is ``<folder>/<case>.nii.gz`` (or .nii/.nrrd/.nhdr), or ``<folder>/<case>/``
    holding a DICOM series; an optional mask is ``<folder>/<case>_mask.<ext>``.
    """
    folder, table = Path(folder), Path(table)
    try:
        rows = list(csv.DictReader(table.open(newline="")))
    except FileNotFoundError:
        raise DatasetError(f"{table}: missing") from None
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DatasetError(f"{table}: cannot read the CSV ({error})") from None
    if not rows or not {"case", "label"} <= set(rows[0]):
        raise DatasetError(f"{table}: needs a header with columns 'case' and 'label'")
    cases = []
    for line, row in enumerate(rows, start=2):
        case_id = (row["case"] or "").strip()
        problem = case_id_problem(case_id)
        if problem:
            raise UnsafePathError(f"{table}, line {line}: {problem}")
        try:
            label = int(row["label"])
            measures = {k: float(v) for k, v in row.items() if k not in ("case", "label") and v not in ("", None)}
        except (TypeError, ValueError) as error:
            raise DatasetError(f"{table}, line {line}: {error}") from None
        if label < 0:
            raise DatasetError(f"{table}, line {line}: label {label} is negative; labels are class indices 0, 1, ...")
        bad = [k for k, v in measures.items() if not np.isfinite(v)]
        if bad:
            raise DatasetError(f"{table}, line {line}: measure '{bad[0]}' is not a finite number")
        candidates = [folder / f"{case_id}{s}" for s in VOLUME_SUFFIXES] + [folder / case_id]
        image = next((p for p in candidates if p.exists()), None)
        if image is None:
            raise DatasetError(f"{table}, line {line}: no volume for case '{case_id}' in {folder}")
        mask = next((p for p in (folder / f"{case_id}_mask{s}" for s in VOLUME_SUFFIXES) if p.exists()), None)
        cases.append(Case(case_id, [image], mask, label, measures, channels=1))
    _check_case_ids(cases, str(table))
    labels = sorted({c.label for c in cases})
    names = class_names or [str(v) for v in range(max(max(labels) + 1, 2))]
    for case in cases:
        case.label_values = tuple(range(len(names)))
    return Dataset(folder, cases, ["image"], names)


@dataclass
class LoadedCase:
    """A case read from disk: ``image`` C x K x J x I, ``mask`` K x J x I (or None), on one grid."""

    case: Case
    image: Volume
    mask: Volume | None


def check_label_values(mask: Volume, allowed: tuple[int, ...], path: Path) -> None:
    """Refuse a mask whose values are not integers of the declared label set ``allowed`` (e.g. 0.3, or -1 for {0, 1})."""
    values = np.unique(mask.array)
    fractional = values[values != np.round(values)]
    if fractional.size:
        raise DatasetError(
            f"{path}: label value {float(fractional[0]):g} is not an integer; labels must be integers of {list(allowed)}"
        )
    undeclared = sorted(set(values.astype(np.int64).tolist()) - set(allowed))
    if undeclared:
        raise DatasetError(
            f"{path}: label values {undeclared} are not declared; the dataset's labels are {list(allowed)}"
        )


def check_channels_not_empty(image: Volume, paths: list[Path], case_id: str) -> None:
    """Refuse all-zero channels (an error: such a channel, or a whole all-zero case, carries nothing to learn from)."""
    arrays = image.array if image.array.ndim == 4 else image.array[None]
    for index, array in enumerate(arrays):
        if not np.any(array):
            source = paths[index] if len(paths) == len(arrays) else paths[0]
            raise DatasetError(f"{source}: channel {index} of case '{case_id}' is all zero (an empty or blank image)")


def load_case(case: Case) -> LoadedCase:
    """Read a case's channels and mask; raise :class:`DatasetError` when their grids disagree, when the
    channel count or label values differ from the dataset's declaration, or when a channel is all zero."""
    channels = [read_volume(p) for p in case.images]
    arrays = []
    for path, volume in zip(case.images, channels):
        if not volume.same_grid(channels[0]):
            raise DatasetError(
                f"{path}: grid {volume.shape_kji} differs from {case.images[0]} {channels[0].shape_kji} (case '{case.case_id}')"
            )
        arrays.extend([volume.array] if volume.array.ndim == 3 else list(volume.array))
    if case.channels is not None and len(arrays) != case.channels:
        raise DatasetError(
            f"{case.images[0]}: case '{case.case_id}' has {len(arrays)} channels (a 4D file?) "
            f"but the dataset declares {case.channels}"
        )
    image = Volume(np.stack(arrays), channels[0].ijk_to_ras, str(case.images[0]))
    mask = None
    if case.mask is not None:
        mask = read_volume(case.mask)
        if mask.channels != 1:
            raise DatasetError(f"{case.mask}: a label map must have one channel, got {mask.channels}")
        if mask.shape_kji != image.shape_kji:
            raise DatasetError(
                f"{case.mask}: label shape {mask.shape_kji} (KJI) does not match image shape {image.shape_kji} of {case.images[0]}"
            )
        if not mask.same_grid(image, tolerance=1e-3):
            raise DatasetError(
                f"{case.mask}: label geometry differs from the image {case.images[0]} (resample it first)"
            )
        if case.label_values is not None:
            check_label_values(mask, case.label_values, case.mask)
    check_channels_not_empty(image, case.images, case.case_id)
    return LoadedCase(case, image, mask)


__all__ = [
    "Case",
    "Dataset",
    "DatasetError",
    "LoadedCase",
    "VolumeReadError",
    "load_case",
    "read_csv_dataset",
    "read_decathlon",
]
