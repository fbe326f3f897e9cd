"""Datasets of cases: Decathlon / nnU-Net layout, or a folder of volumes with a CSV of labels.

A :class:`Case` names the files of one patient/case: one image file per channel (modality), an
optional reference mask, an optional case-level label and optional external measures (such as
seed 000's liquid loss). :func:`load_case` reads them into volumes and checks that they agree.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .readers import VolumeReadError, read_volume
from .volume import Volume

VOLUME_SUFFIXES = (".nii.gz", ".nii", ".nrrd", ".nhdr")


class DatasetError(ValueError):
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
        raise KeyError(f"no channel '{channel}'; the channels of {self.root} are {self.channel_names} "
                       f"(name or index 0..{len(self.channel_names) - 1})")

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


def read_decathlon(root: str | Path) -> Dataset:
    """A Decathlon/nnU-Net dataset: ``dataset.json``, ``imagesTr/<case>_000k.nii.gz``, ``labelsTr/<case>.nii.gz``.

    An entry's image may also be one 4D file. Class names come from ``labels`` (Decathlon) and
    channel names from ``modality`` / ``channel_names`` (nnU-Net v2).
    """
    root = Path(root)
    description = root / "dataset.json"
    try:
        meta = json.loads(description.read_text())
    except FileNotFoundError:
        raise DatasetError(f"{description}: missing (not a Decathlon/nnU-Net dataset folder)") from None
    except json.JSONDecodeError as error:
        raise DatasetError(f"{description}: invalid JSON ({error})") from None
    channels = meta.get("modality") or meta.get("channel_names") or {"0": "image"}
    channel_names = [channels[key] for key in sorted(channels, key=int)]
    labels = meta.get("labels", {"0": "background", "1": "foreground"})
    if all(isinstance(v, int) for v in labels.values()):  # nnU-Net v2: name -> value
        labels = {str(v): k for k, v in labels.items()}
    class_names = [labels[key] for key in sorted(labels, key=int)]
    entries = meta.get("training")
    if entries is None:  # nnU-Net v2 lists no cases: take the label files
        entries = [{"image": f"./imagesTr/{p.name}", "label": f"./labelsTr/{p.name}"} for p in sorted((root / "labelsTr").glob("*.nii.gz"))]
    cases = []
    for entry in entries:
        image = root / entry["image"]
        case_id = _case_id(entry["image"])
        if image.exists():
            images = [image]
        else:
            suffix = image.name[len(case_id):]
            images = [image.with_name(f"{case_id}_{k:04d}{suffix}") for k in range(len(channel_names))]
        missing = [str(p) for p in images if not p.exists()]
        if missing:
            raise DatasetError(f"{description}: case '{case_id}' has no image file {missing[0]}")
        mask = root / entry["label"] if entry.get("label") else None
        if mask is not None and not mask.exists():
            raise DatasetError(f"{description}: case '{case_id}' has no label file {mask}")
        cases.append(Case(case_id, images, mask))
    if not cases:
        raise DatasetError(f"{description}: no training cases")
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
    if not rows or not {"case", "label"} <= set(rows[0]):
        raise DatasetError(f"{table}: needs a header with columns 'case' and 'label'")
    cases = []
    for line, row in enumerate(rows, start=2):
        case_id = row["case"].strip()
        try:
            label = int(row["label"])
            measures = {k: float(v) for k, v in row.items() if k not in ("case", "label") and v not in ("", None)}
        except ValueError as error:
            raise DatasetError(f"{table}, line {line}: {error}") from None
        candidates = [folder / f"{case_id}{s}" for s in VOLUME_SUFFIXES] + [folder / case_id]
        image = next((p for p in candidates if p.exists()), None)
        if image is None:
            raise DatasetError(f"{table}, line {line}: no volume for case '{case_id}' in {folder}")
        mask = next((p for p in (folder / f"{case_id}_mask{s}" for s in VOLUME_SUFFIXES) if p.exists()), None)
        cases.append(Case(case_id, [image], mask, label, measures))
    labels = sorted({c.label for c in cases})
    names = class_names or [str(v) for v in range(max(labels) + 1)]
    return Dataset(folder, cases, ["image"], names)


@dataclass
class LoadedCase:
    """A case read from disk: ``image`` C x K x J x I, ``mask`` K x J x I (or None), on one grid."""

    case: Case
    image: Volume
    mask: Volume | None


def load_case(case: Case) -> LoadedCase:
    """Read a case's channels and mask; raise :class:`DatasetError` when their grids disagree."""
    channels = [read_volume(p) for p in case.images]
    arrays = []
    for path, volume in zip(case.images, channels):
        if not volume.same_grid(channels[0]):
            raise DatasetError(f"{path}: grid {volume.shape_kji} differs from {case.images[0]} {channels[0].shape_kji} (case '{case.case_id}')")
        arrays.extend([volume.array] if volume.array.ndim == 3 else list(volume.array))
    image = Volume(np.stack(arrays), channels[0].ijk_to_ras, str(case.images[0]))
    mask = None
    if case.mask is not None:
        mask = read_volume(case.mask)
        if mask.shape_kji != image.shape_kji:
            raise DatasetError(f"{case.mask}: label shape {mask.shape_kji} (KJI) does not match image shape {image.shape_kji} of {case.images[0]}")
        if not mask.same_grid(image, tolerance=1e-3):
            raise DatasetError(f"{case.mask}: label geometry differs from the image {case.images[0]} (resample it first)")
    return LoadedCase(case, image, mask)


__all__ = ["Case", "Dataset", "DatasetError", "LoadedCase", "VolumeReadError", "load_case", "read_csv_dataset", "read_decathlon"]
