"""The on-disk layout of a study's output folder: every path the stages read or write, in one place.

``output/``
  ``folds.json`` (the case folds), ``config.json`` (configuration and fingerprint),
  ``models/<model>/fold<k>/model.pt`` (+ its model card ``model.json`` and ``result.json``, written
  by the train stage), ``units/<case>/fold<k>.slices.parquet`` (+ ``fold<k>.agreement.parquet`` and,
  with the ``faithfulness`` key, ``fold<k>.faithfulness.parquet``; the marker ``fold<k>.json`` is written last), ``retraining/<variant>/fold<k>.json``,
  ``segment/<network>/fold<k>/`` (the segment stage's U-Nets and their held-out rows), ``figures/``,
  and the study tables (``slices.parquet``, ``results.parquet``, ...) written by the report stage.
"""

from __future__ import annotations

from pathlib import Path

from ..paths import check_case_id, output_path
from .config import ModelSpec

UNIT_PARTS: tuple[str, ...] = ("slices", "agreement", "faithfulness")
"""The Parquet tables of a unit, besides its marker (``agreement`` only for held-out units, ``faithfulness``
only for held-out units of a study with that key: :mod:`WSSSCamLib.study.faithfulness_rows`)."""


def folds_file(output: Path) -> Path:
    """The study's case folds (``Folds`` as JSON)."""
    return output / "folds.json"


def config_file(output: Path) -> Path:
    """The configuration the units were computed with, and its fingerprint."""
    return output / "config.json"


def models_folder(output: Path, model: str) -> Path:
    """Where the train stage cross-validates ``model`` (one ``fold<k>/`` per fold)."""
    return output / "models" / model


def checkpoint_path(output: Path, spec: ModelSpec, fold: int) -> Path:
    """The fold's checkpoint of ``spec``: its ``checkpoints`` pattern, else the one the train stage writes."""
    if spec.checkpoints:
        return Path(spec.checkpoints.format(fold=fold))
    return models_folder(output, spec.name) / f"fold{fold}" / "model.pt"


def _unit_files(folder: Path, stem: str) -> dict[str, Path]:
    files = {part: folder / f"{stem}.{part}.parquet" for part in UNIT_PARTS}
    return {**files, "marker": folder / f"{stem}.json"}


def unit_paths(output: Path, case_id: str, fold: int) -> dict[str, Path]:
    """The files of unit (case, fold), all under ``output/units/<case>/`` (an unsafe case id is refused)."""
    folder = output_path(output, "units", check_case_id(case_id, f"{output}: unit"))
    return _unit_files(folder, f"fold{fold}")


def unit_markers(output: Path) -> list[Path]:
    """The markers of every finished unit, sorted (a unit without a marker is unfinished)."""
    return sorted((output / "units").glob("*/fold*.json"))


def unit_paths_of(marker: Path) -> dict[str, Path]:
    """The files of the unit that ``marker`` (a path from :func:`unit_markers`) commits."""
    return _unit_files(marker.parent, marker.name[: -len(".json")])


def retraining_result_path(output: Path, variant: str, fold: int) -> Path:
    """The filtered-retraining result of one variant x fold."""
    return output / "retraining" / variant / f"fold{fold}.json"


def retraining_result_paths(output: Path) -> list[Path]:
    """Every filtered-retraining result file present, sorted."""
    return sorted((output / "retraining").glob("*/fold*.json"))


SEGMENT_FILES: tuple[str, ...] = ("checkpoint", "card", "log", "slices", "result")
"""The files of one segment network x fold (the result, written last, commits it)."""


def segment_paths(output: Path, network: str, fold: int) -> dict[str, Path]:
    """The files of segmentation network ``network`` (a slug: pseudo-label, self-trained, supervised) of ``fold``:
    ``output/segment/<network>/fold<k>/`` ``model.pt``, ``model.json``, ``train_log.csv``, ``slices.parquet``
    (held-out slice rows) and ``result.json`` (written last)."""
    folder = output / "segment" / network / f"fold{fold}"
    names = ("model.pt", "model.json", "train_log.csv", "slices.parquet", "result.json")
    return dict(zip(SEGMENT_FILES, (folder / n for n in names)))


def segment_result_paths(output: Path) -> list[Path]:
    """Every segment network x fold result present (``segment/<network>/fold<k>/result.json``), sorted."""
    return sorted((output / "segment").glob("*/fold*/result.json"))


def figures_folder(output: Path) -> Path:
    """The report's PNG figures and overlays."""
    return output / "figures"
