"""Gathering the output folders of a sharded study into one (``wssscam merge``)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from ..atomic import atomic_path
from ..errors import InvalidInputError, MissingFileError
from ..paths import check_case_id, output_path
from .layout import (
    folds_file,
    retraining_result_paths,
    segment_result_paths,
    unit_markers,
    unit_paths_of,
)


def merge_outputs(target: str | Path, sources: list[str | Path]) -> int:
    """Copy the finished units (and models, folds, filtered-retraining and segment results) of shard output folders
    into ``target``; returns units copied.

    Refuses sources whose ``folds.json`` differs (different studies). Then run the ``report`` stage on ``target``.
    """
    target = Path(target)
    folds_text = None
    copied = 0
    for source in map(Path, sources):
        source_folds = folds_file(source)
        if not source_folds.exists():
            raise MissingFileError(f"{source_folds}: missing; {source} is not a study output folder")
        text = json.dumps(json.loads(source_folds.read_text()), sort_keys=True)
        if folds_text is not None and text != folds_text:
            raise InvalidInputError(
                f"{source_folds}: other folds than the first shard's; these outputs are not shards of one study"
            )
        folds_text = text
        target.mkdir(parents=True, exist_ok=True)
        if not folds_file(target).exists():
            shutil.copy2(source_folds, folds_file(target))
        for marker in unit_markers(source):
            destination = output_path(target, "units", check_case_id(marker.parent.name, str(marker)))
            destination.mkdir(parents=True, exist_ok=True)
            files = unit_paths_of(marker)
            for part in (files[name] for name in files if name != "marker"):
                if part.exists():
                    shutil.copy2(part, destination / part.name)
            with atomic_path(destination / marker.name) as temporary:  # the marker last and whole: the unit is complete
                shutil.copyfile(marker, temporary)
            copied += 1
        for result in retraining_result_paths(source):  # filtered retraining, one file per variant x fold
            destination = target / result.relative_to(source)
            destination.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(destination) as temporary:
                shutil.copyfile(result, temporary)
        for result in segment_result_paths(source):  # segment stage: a network x fold's files, its result last
            folder = target / result.parent.relative_to(source)
            folder.mkdir(parents=True, exist_ok=True)
            for part in sorted(result.parent.iterdir()):
                if part.is_file() and part.name != result.name and not part.name.startswith("."):
                    with atomic_path(folder / part.name) as temporary:
                        shutil.copyfile(part, temporary)
            with atomic_path(folder / result.name) as temporary:
                shutil.copyfile(result, temporary)
        models = source / "models"
        if models.exists():
            for checkpoint in models.rglob("*"):
                if checkpoint.is_file():
                    destination = target / checkpoint.relative_to(source)
                    if not destination.exists():
                        destination.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy2(checkpoint, destination)
    return copied
