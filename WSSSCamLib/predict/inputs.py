"""What ``wssscam predict`` reads: cases (one or more channel files, an optional reference mask and
an optional Seg- region) from volume files, DICOM series folders, dataset folders or a manifest.

* a NIfTI/NRRD file: one single-channel case named after the file (``FLAIR.nii.gz`` -> ``FLAIR``);
* a folder with ``dataset.json`` (Decathlon/nnU-Net): every case, channels in the dataset's order,
  the label file as reference;
* any other folder: one DICOM series, a case named after the folder;
* a manifest (JSON list of ``{"case": id, "images": [paths], "channels": [their names],
  "reference": path, "region": path}``, relative paths from the manifest's folder; without
  ``channels`` the images must be in the card's channel order) - what the Slicer panel writes.

Named channels (a dataset's, a manifest's ``channels``) are put in each model card's channel order
when they are the same names in another order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..data.datasets import read_decathlon
from ..data.readers import NIFTI_SUFFIXES, NRRD_SUFFIXES, read_volume
from ..data.volume import Volume
from ..errors import InvalidInputError
from ..paths import check_case_id


class PredictInputError(InvalidInputError):
    """An input cannot be used; the message names the file and the problem."""


@dataclass
class PredictCase:
    """One case to predict: ``images`` one path per channel (file or DICOM folder), in the model
    card's channel order; ``reference``: mask file for metrics; ``region``: mask file (pixel set M of
    the Seg- methods); ``channel_names``: the channels' names when known (a dataset's, a manifest's
    ``channels``), so that they can be put in each model card's order."""

    case_id: str
    images: list[Path]
    reference: Path | None = None
    region: Path | None = None
    channel_names: list[str] | None = None

    @property
    def is_dicom(self) -> bool:
        return self.images[0].is_dir() or self.images[0].suffix.lower() == ".dcm"

    def describe(self) -> list:
        """File names, sizes and modification times, and the channel names (part of the output's fingerprint):
        an input edited in place is redone."""
        return [[str(p), *_stamp(p)] for p in (*self.images, self.reference, self.region) if p is not None] + [
            self.channel_names
        ]


@dataclass
class LoadedInput:
    """A case read from disk: ``image`` C x K x J x I on the first channel's grid, ``reference`` and
    ``region`` K x J x I bool (or None), ``dicom_files`` the first channel's DICOM images (or [])."""

    image: Volume
    reference: np.ndarray | None
    region: np.ndarray | None
    dicom_files: list[Path]


def _stamp(path: Path) -> list[int]:
    """Size in bytes and last modification (ns) of a file, or of a folder's files (sum, latest)."""
    stats = [p.stat() for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path.stat()]
    return [sum(s.st_size for s in stats), max((s.st_mtime_ns for s in stats), default=0)]


def _file_case_id(path: Path) -> str:
    name = path.name
    for suffix in (*NIFTI_SUFFIXES, *NRRD_SUFFIXES, ".dcm"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return name


def cases_from_paths(paths: list[str | Path]) -> list[PredictCase]:
    """Cases from volume files, DICOM series folders and dataset folders (see the module docstring)."""
    cases: list[PredictCase] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise PredictInputError(f"{path}: no such file or folder")
        if path.is_dir() and (path / "dataset.json").is_file():
            dataset = read_decathlon(path)
            cases += [
                PredictCase(
                    check_case_id(c.case_id, str(path)), list(c.images), c.mask, None, list(dataset.channel_names)
                )
                for c in dataset.cases
            ]
        else:
            cases.append(PredictCase(check_case_id(_file_case_id(path), str(path)), [path]))
    return _unique(cases)


def cases_from_manifest(path: str | Path) -> list[PredictCase]:
    """Cases listed in a JSON manifest (see the module docstring)."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text())
    except FileNotFoundError:
        raise PredictInputError(f"{path}: no such manifest") from None
    except json.JSONDecodeError as error:
        raise PredictInputError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(entries, list) or not entries:
        raise PredictInputError(f"{path}: a manifest is a non-empty JSON list of cases")
    cases = []
    for number, entry in enumerate(entries):
        where = f"{path}, case {number}"
        if not isinstance(entry, dict) or not isinstance(entry.get("images"), list) or not entry["images"]:
            raise PredictInputError(f"{where}: needs 'images', a non-empty list of paths")
        unknown = set(entry) - {"case", "images", "reference", "region", "channels"}
        if unknown:
            raise PredictInputError(
                f"{where}: unknown key(s) {sorted(unknown)}; known: case, images, reference, region, channels"
            )
        channels = entry.get("channels")
        if channels is not None and (not isinstance(channels, list) or len(channels) != len(entry["images"])):
            raise PredictInputError(f"{where}: 'channels' must list one name per image ({len(entry['images'])})")
        images = [path.parent / str(p) for p in entry["images"]]
        optional = {k: (path.parent / str(entry[k]) if entry.get(k) else None) for k in ("reference", "region")}
        for file in [*images, *(p for p in optional.values() if p is not None)]:
            if not file.exists():
                raise PredictInputError(f"{where}: no such file or folder {file}")
        case_id = str(entry.get("case") or _file_case_id(images[0]))
        cases.append(
            PredictCase(
                check_case_id(case_id, where),
                images,
                optional["reference"],
                optional["region"],
                [str(c) for c in channels] if channels else None,
            )
        )
    return _unique(cases)


def _unique(cases: list[PredictCase]) -> list[PredictCase]:
    seen: dict[str, PredictCase] = {}
    for case in cases:
        if case.case_id in seen:
            raise PredictInputError(
                f"{case.images[0]}: case id '{case.case_id}' is also the id of {seen[case.case_id].images[0]}; "
                "rename one or use a manifest with explicit case ids"
            )
        seen[case.case_id] = case
    return cases


def _mask_on_grid(path: Path, image: Volume, what: str) -> np.ndarray:
    mask = read_volume(path)
    if not mask.same_grid(image, tolerance=1e-3):
        raise PredictInputError(
            f"{path}: {what} grid {mask.shape_kji} differs from the image {image.source} {image.shape_kji} "
            "(same shape and geometry needed)"
        )
    return mask.array > 0


def load_input(case: PredictCase) -> LoadedInput:
    """Read a case's channels (all on the first channel's grid), reference and region."""
    volumes = [read_volume(p) for p in case.images]
    arrays = []
    for path, volume in zip(case.images, volumes):
        if not volume.same_grid(volumes[0]):
            raise PredictInputError(
                f"{path}: grid {volume.shape_kji} differs from the first channel {case.images[0]} "
                f"{volumes[0].shape_kji} (case '{case.case_id}'; resample it first)"
            )
        arrays.extend([volume.array] if volume.array.ndim == 3 else list(volume.array))
    image = Volume(np.stack(arrays), volumes[0].ijk_to_ras, str(case.images[0]))
    reference = _mask_on_grid(case.reference, image, "reference") if case.reference else None
    region = _mask_on_grid(case.region, image, "region") if case.region else None
    dicom_files = []
    if case.is_dicom:
        first = case.images[0]
        dicom_files = (
            sorted(p for p in first.rglob("*") if p.is_file() and not p.name.startswith("."))
            if first.is_dir()
            else [first]
        )
    return LoadedInput(image, reference, region, dicom_files)
