"""A finished ``wssscam predict`` output as an nnU-Net v2 raw dataset (pseudo-labels for a segmentation network).

``export_nnunet(predict_out, segment, out, dataset_id, name)`` writes
``<out>/Dataset<ID>_<name>/``:

* ``imagesTr/<case>_<XXXX>.nii.gz``: every input channel of every committed case of the run (the files
  in ``result.json``'s ``inputs``, a 4D input split into its channels), whatever their format (NIfTI,
  NRRD, DICOM series), as NIfTI with the input's IJK-to-RAS affine, so the geometry is kept; integer
  images that fit stay int16, others are float32;
* ``labelsTr/<case>.nii.gz``: the chosen segment (``masks/<segment>`` of the case) as label 1, uint8,
  on the same grid with the same affine; with ``uncertain=(low, high)`` every voxel whose CAM lies in
  ``[low, high]`` (both ends included) becomes the ``ignore`` label 2 (nnU-Net v2 leaves it out of the
  loss; it must be the highest label). The CAM is the segment's own CAM (``cams/<model>__<method>`` of
  its one model and method) or, for an ensemble segment, the one named by ``cam`` (a key of
  ``result.json``'s ``files.cams``, e.g. ``layer-cam-fused``); ``dataset.json`` records which file;
* ``dataset.json`` (nnU-Net v2): ``channel_names`` from the first model's card (its first channels;
  ``channel_<i>`` when the card cannot be read), ``labels`` ``{background: 0, <label_name>: 1[,
  ignore: 2]}``, ``numTraining``, ``file_ending`` ``.nii.gz``, and a ``wssscam`` record of where the
  labels came from.

nnU-Net case names are the case ids with characters other than letters, digits, ``.``, ``_`` and ``-``
replaced by ``_``; ids that then collide (also ignoring case, for case-insensitive file systems) are
refused. Checked before anything is written: a run with uncommitted cases, an unknown segment or CAM
name (the available names are listed), missing inputs or masks; while writing: channel counts that
differ between cases, inputs whose grid is not the one the predict run recorded. Every file is written atomically (temporary name, then rename) under ``out``; a rerun
rewrites identical files and removes ``.nii.gz`` files of cases an earlier export into the same
dataset folder wrote and this one does not.

Relative paths in ``result.json`` (inputs, checkpoints) are relative to the folder ``wssscam predict``
ran in: they are looked up from the current folder, then from that folder as ``summary.json`` tells it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..atomic import remove_stale_temporaries, write_text
from ..data.readers import read_volume, write_volume
from ..data.volume import Volume
from ..errors import InvalidInputError
from ..lock import folder_lock
from ..paths import check_case_id, output_path
from ..training.checkpoint import CheckpointError, card_path, read_card
from .run import RESULT_FILE, read_result

FILE_ENDING = ".nii.gz"
IGNORE_LABEL = "ignore"
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


class ExportError(InvalidInputError):
    """A predict output cannot be exported as asked; the message names the file or option and the problem."""


@dataclass
class NnUNetExport:
    """What an export wrote: the dataset folder, case id -> nnU-Net case name, channel names, labels, the
    CAM of the ignore label (its name in ``result.json``'s ``files.cams``) and the ignored voxels per case."""

    folder: Path
    cases: dict[str, str]
    channel_names: list[str]
    labels: dict[str, int]
    cam: str | None = None
    ignored: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        """A short human summary."""
        text = [
            f"{len(self.cases)} case(s), channels {self.channel_names}, labels {self.labels} -> {self.folder}",
        ]
        if self.cam:
            total = sum(self.ignored.values())
            text.append(f"  ignore label from {self.cam}: {total} voxels over {len(self.ignored)} case(s)")
        return text


def nnunet_case_name(case_id: str) -> str:
    """The nnU-Net case name of ``case_id``: characters other than letters, digits, '.', '_' and '-' become '_'."""
    return _UNSAFE.sub("_", case_id)


def dataset_folder_name(dataset_id: int, name: str) -> str:
    """``Dataset<ID>_<name>`` as nnU-Net v2 names raw datasets (ID 1..999 in three digits)."""
    if isinstance(dataset_id, bool) or not isinstance(dataset_id, int) or not 1 <= dataset_id <= 999:
        raise ExportError(f"--id: an nnU-Net dataset id is an integer 1..999, got {dataset_id!r}")
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ExportError(
            f"--name: '{name}' is not a dataset name (letters, digits, '_' and '-', starting with a letter or digit)"
        )
    return f"Dataset{dataset_id:03d}_{name}"


def parse_uncertain(text: str) -> tuple[float, float]:
    """``"low,high"`` -> (low, high) with 0 <= low < high <= 1; :class:`ExportError` otherwise."""
    try:
        low, high = (float(part) for part in str(text).split(","))
    except ValueError:
        raise ExportError(f"--uncertain: expected low,high (e.g. 0.3,0.7), got '{text}'") from None
    return _check_uncertain((low, high))


def _check_uncertain(band: tuple[float, float]) -> tuple[float, float]:
    low, high = (float(v) for v in band)
    if not (0.0 <= low < high <= 1.0):
        raise ExportError(f"--uncertain: expected 0 <= low < high <= 1 (CAMs lie in [0, 1]), got {low},{high}")
    return low, high


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ExportError(f"{path}: missing; not a finished wssscam predict output folder") from None
    except json.JSONDecodeError as error:
        raise ExportError(f"{path}: invalid JSON ({error})") from None
    if not isinstance(data, dict):
        raise ExportError(f"{path}: not a wssscam predict summary")
    return data


def _run_folder(predict_out: Path, recorded: str) -> Path | None:
    """The folder ``wssscam predict`` ran in, from a case's ``result.json`` path as ``summary.json`` recorded
    it (``<out as given>/<case>/result.json``); None when that path is absolute or does not fit."""
    parts = Path(recorded).parts
    if Path(recorded).is_absolute() or len(parts) < 3:
        return None
    given = parts[:-2]  # the output folder as given to predict
    actual = predict_out.resolve().parts
    if len(actual) < len(given) or tuple(actual[len(actual) - len(given) :]) != tuple(given):
        return None
    return Path(*actual[: len(actual) - len(given)])


def _locate(recorded: str, bases: list[Path]) -> Path | None:
    path = Path(recorded)
    if path.is_absolute():
        return path if path.exists() else None
    for base in bases:
        if (base / path).exists():
            return base / path
    return None


@dataclass
class _Case:
    case_id: str
    name: str
    folder: Path
    result: dict
    inputs: list[Path]
    mask: Path
    cam: Path | None
    cam_name: str | None


def _cam_of(result: dict, segment: str, cam: str | None, where: Path) -> tuple[str, str]:
    """The CAM of the ignore label, (its name in ``files.cams``, its file relative to the case folder):
    ``cam`` if named, else the segment's own."""
    cams = result.get("files", {}).get("cams", {})
    if cam is not None:
        if cam not in cams:
            raise ExportError(f"{where}: no CAM '{cam}'; the case's CAMs are {sorted(cams)}")
        return cam, cams[cam]
    member = result.get("members", {}).get(segment)
    if not member:
        raise ExportError(
            f"--uncertain: segment '{segment}' combines several CAMs; name the one to use with --cam "
            f"(one of {sorted(cams)})"
        )
    model, method = member
    relative = result["models"][model]["cams"][method]
    return next(key for key, value in cams.items() if value == relative), relative


def _channel_names(result: dict, count: int, bases: list[Path]) -> list[str]:
    """The first ``count`` channel names of the first model's card, else ``channel_<i>``."""
    for model in result.get("models", {}).values():
        checkpoint = _locate(model.get("checkpoint", ""), bases) if model.get("checkpoint") else None
        if checkpoint is None:
            break
        try:
            names = read_card(card_path(checkpoint)).channel_names
        except CheckpointError:
            break
        if len(names) >= count:
            return [str(n) for n in names[:count]]
        break
    return [f"channel_{i}" for i in range(count)]


def _collect(
    predict_out: Path, segment: str, uncertain: tuple[float, float] | None, cam: str | None
) -> tuple[list[_Case], list[Path]]:
    """Every committed case of the run with its files, checked (see the module docstring)."""
    summary_path = predict_out / "summary.json"
    summary = _read_json(summary_path)
    pending = summary.get("pending") or []
    if pending:
        raise ExportError(
            f"{summary_path}: {len(pending)} case(s) not committed yet ({', '.join(map(str, pending[:5]))}"
            f"{', ...' if len(pending) > 5 else ''}); finish the predict run first"
        )
    recorded = summary.get("cases")
    if not isinstance(recorded, dict) or not recorded:
        raise ExportError(f"{summary_path}: no committed cases")
    bases = [Path.cwd()]
    run_folder = _run_folder(predict_out, str(next(iter(recorded.values()))))
    if run_folder is not None and run_folder != Path.cwd():
        bases.append(run_folder)
    cases: list[_Case] = []
    names: dict[str, str] = {}
    for case_id in recorded:
        check_case_id(case_id, str(summary_path))
        folder = output_path(predict_out, case_id)
        result = read_result(folder)
        if result is None or result.get("case") != case_id:
            raise ExportError(f"{folder / RESULT_FILE}: missing or unreadable; case '{case_id}' is not committed")
        masks = result.get("files", {}).get("masks", {})
        if segment not in masks:
            raise ExportError(f"{folder / RESULT_FILE}: no segment '{segment}'; the segments are {list(masks)}")
        name = nnunet_case_name(case_id)
        for other_id, other in names.items():
            if other.lower() == name.lower():
                raise ExportError(
                    f"{summary_path}: cases '{other_id}' and '{case_id}' both become nnU-Net case '{name}' "
                    "(characters other than letters, digits, '.', '_', '-' become '_'; case is ignored); rename one"
                )
        names[case_id] = name
        inputs = []
        for recorded_input in result.get("inputs", []):
            path = _locate(recorded_input, bases)
            if path is None:
                raise ExportError(
                    f"{folder / RESULT_FILE}: input '{recorded_input}' not found (looked in {', '.join(map(str, bases))})"
                )
            inputs.append(path)
        if not inputs:
            raise ExportError(f"{folder / RESULT_FILE}: lists no inputs")
        cam_file, cam_name = None, None
        if uncertain is not None:
            cam_name, relative = _cam_of(result, segment, cam, folder / RESULT_FILE)
            cam_file = output_path(folder, relative)
        mask_file = output_path(folder, masks[segment])
        for file in (mask_file, cam_file):
            if file is not None and not file.is_file():
                raise ExportError(f"{file}: listed in {folder / RESULT_FILE} but missing")
        cases.append(_Case(case_id, name, folder, result, inputs, mask_file, cam_file, cam_name))
    return cases, bases


def _channels(case: _Case) -> Volume:
    """The case's channels (C x K x J x I) on the first input's grid, checked against ``result.json``."""
    volumes = [read_volume(path) for path in case.inputs]
    arrays = []
    for path, volume in zip(case.inputs, volumes):
        if not volume.same_grid(volumes[0]):
            raise ExportError(f"{path}: grid differs from the first channel {case.inputs[0]} (case '{case.case_id}')")
        arrays.extend([volume.array] if volume.array.ndim == 3 else list(volume.array))
    image = Volume(np.stack(arrays), volumes[0].ijk_to_ras, str(case.inputs[0]))
    recorded = np.asarray(case.result.get("ijk_to_ras", np.full((4, 4), np.nan)), dtype=float)
    if list(image.shape_kji) != list(case.result.get("shape_kji", [])) or not np.allclose(
        image.ijk_to_ras, recorded, atol=1e-4
    ):
        raise ExportError(
            f"{case.inputs[0]}: shape or geometry differs from what the predict run recorded in "
            f"{case.folder / RESULT_FILE} (the input changed since; predict it again)"
        )
    return image


def _on_grid(path: Path, image: Volume) -> np.ndarray:
    volume = read_volume(path)
    if not volume.same_grid(image, tolerance=1e-3):
        raise ExportError(f"{path}: grid {volume.shape_kji} differs from the input {image.source} {image.shape_kji}")
    return volume.array


def _image_array(array: np.ndarray) -> np.ndarray:
    """int16 when every value is an integer that fits (the usual MR/CT data), else float32."""
    if np.all(np.mod(array, 1) == 0) and array.min() >= -32768 and array.max() <= 32767:
        return array.astype(np.int16)
    return array.astype(np.float32)


def export_nnunet(
    predict_out: str | Path,
    segment: str,
    out: str | Path,
    dataset_id: int,
    name: str,
    uncertain: tuple[float, float] | None = None,
    cam: str | None = None,
    label_name: str = "lesion",
) -> NnUNetExport:
    """Write the pseudo-labels ``segment`` of every case of a finished predict run as an nnU-Net v2 raw
    dataset ``<out>/Dataset<ID>_<name>`` (see the module docstring); returns what was written."""
    predict_out, out = Path(predict_out), Path(out)
    dataset_name = dataset_folder_name(dataset_id, name)
    if uncertain is not None:
        uncertain = _check_uncertain(uncertain)
    elif cam is not None:
        raise ExportError("--cam names the CAM of the ignore label; it needs --uncertain low,high")
    if not isinstance(label_name, str) or not label_name.strip() or label_name in ("background", IGNORE_LABEL):
        raise ExportError(f"--label-name: '{label_name}' cannot name the foreground label")
    if not predict_out.is_dir():
        raise ExportError(f"{predict_out}: no such predict output folder")
    cases, bases = _collect(predict_out, segment, uncertain, cam)
    folder = output_path(out, dataset_name)
    if out.is_dir():
        clash = sorted(p.name for p in out.glob(f"Dataset{dataset_id:03d}_*") if p.name != dataset_name)
        if clash:
            raise ExportError(f"{out}: dataset id {dataset_id} is taken by {clash[0]}; nnU-Net needs unique ids")
    labels = {"background": 0, label_name: 1}
    if uncertain is not None:
        labels[IGNORE_LABEL] = 2
    written: set[Path] = set()
    channel_count = None
    ignored: dict[str, int] = {}
    with folder_lock(folder, what="wssscam export-nnunet") as alone:
        if alone:
            remove_stale_temporaries(folder)
        for case in cases:
            image = _channels(case)
            if channel_count is None:
                channel_count = image.channels
            elif image.channels != channel_count:
                raise ExportError(
                    f"{case.inputs[0]}: case '{case.case_id}' has {image.channels} channels, the first case "
                    f"{channel_count}; nnU-Net needs the same channels in every case"
                )
            label = (_on_grid(case.mask, image) > 0).astype(np.uint8)
            if case.cam is not None:
                values = _on_grid(case.cam, image)
                band = (values >= uncertain[0]) & (values <= uncertain[1])
                label[band] = labels[IGNORE_LABEL]
                ignored[case.name] = int(band.sum())
            for channel in range(image.channels):
                target = output_path(folder, "imagesTr", f"{case.name}_{channel:04d}{FILE_ENDING}")
                write_volume(_image_array(image.array[channel]), image.ijk_to_ras, target)
                written.add(target)
            target = output_path(folder, "labelsTr", f"{case.name}{FILE_ENDING}")
            write_volume(label, image.ijk_to_ras, target)
            written.add(target)
        channel_names = _channel_names(cases[0].result, channel_count, bases)
        cam_name = cases[0].cam_name
        description = {
            "channel_names": {str(i): n for i, n in enumerate(channel_names)},
            "labels": labels,
            "numTraining": len(cases),
            "file_ending": FILE_ENDING,
            "name": name,
            "description": f"Pseudo-labels '{segment}' of a wssscam predict run (CAM-derived, not reference masks)",
            "wssscam": {
                "predict_output": str(predict_out),
                "segment": segment,
                "ignore": None
                if uncertain is None
                else {
                    "cam": cam_name,
                    "files": {case.name: str(case.cam.relative_to(case.folder)) for case in cases},
                    "label": 2,
                    "rule": f"{uncertain[0]} <= CAM <= {uncertain[1]}",
                },
                "cases": {case.name: case.case_id for case in cases},
            },
        }
        write_text(output_path(folder, "dataset.json"), json.dumps(description, indent=1) + "\n")
        for sub in ("imagesTr", "labelsTr"):
            for path in (folder / sub).glob(f"*{FILE_ENDING}"):
                if path not in written and path.is_file():
                    path.unlink()
    return NnUNetExport(folder, {c.case_id: c.name for c in cases}, channel_names, labels, cam_name, ignored)


__all__ = [
    "ExportError",
    "NnUNetExport",
    "dataset_folder_name",
    "export_nnunet",
    "nnunet_case_name",
    "parse_uncertain",
]
