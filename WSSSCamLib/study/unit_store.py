"""Writing and reading units: a unit's tables, then its marker (written last: a unit whose marker exists is
finished), and every finished unit gathered back for the report. Paths: :mod:`WSSSCamLib.study.layout`."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from ..atomic import atomic_path, write_text
from ..errors import MissingFileError
from .layout import unit_markers, unit_paths, unit_paths_of
from .units import Timings


def unit_done(output: Path, case_id: str, fold: int) -> bool:
    """Whether unit (case, fold) is finished (its marker exists)."""
    return unit_paths(output, case_id, fold)["marker"].exists()


def write_parquet(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` as Parquet atomically (temporary name, then rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as temporary:
        frame.to_parquet(temporary, index=False)
    return path


def write_unit(
    output: Path,
    case_id: str,
    fold: int,
    role: str,
    slices: pd.DataFrame,
    agreement: pd.DataFrame | None,
    timings: Timings,
    slice_count: int,
) -> None:
    """Write a unit's tables, then its marker (the unit counts as done only once the marker exists)."""
    paths = unit_paths(output, case_id, fold)
    write_parquet(slices, paths["slices"])
    if agreement is not None:
        write_parquet(agreement, paths["agreement"])
    marker = {"case": case_id, "fold": fold, "role": role, "slices": slice_count, "seconds": dict(timings.seconds)}
    write_text(paths["marker"], json.dumps(marker, indent=1))


def gather_units(output: Path) -> tuple[pd.DataFrame, pd.DataFrame, list[dict]]:
    """All finished units' slice rows, agreement rows and markers (units without a marker are ignored)."""
    slices, agreement, markers = [], [], []
    for marker_path in unit_markers(output):
        marker = json.loads(marker_path.read_text())
        files = unit_paths_of(marker_path)
        slices.append(pd.read_parquet(files["slices"]))
        if marker["role"] == "test":
            agreement.append(pd.read_parquet(files["agreement"]))
        markers.append(marker)
    if not slices:
        raise MissingFileError(f"{output}: no finished units; run the 'cams' stage first")
    return (
        pd.concat(slices, ignore_index=True),
        (pd.concat(agreement, ignore_index=True) if agreement else pd.DataFrame()),
        markers,
    )
