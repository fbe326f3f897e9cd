"""Path safety: case ids that are plain names, output paths that stay under the output folder, and
dataset file references that stay under the dataset folder.

Every file written per case (study units, overlays, predictions) is named through
:func:`output_path`, and every case id read from a dataset passes :func:`check_case_id`. The checks are
lexical (``..`` and absolute paths are refused as written): a symlink *inside* a folder that points
elsewhere is the user's explicit choice and is followed.
"""

from __future__ import annotations

import os
from pathlib import Path, PurePosixPath, PureWindowsPath

from .errors import UserError


class UnsafePathError(UserError, ValueError):
    """A case id or path would lead outside the folder it belongs to; the message names it and the folder."""


def case_id_problem(case_id: object) -> str | None:
    """Why ``case_id`` cannot name files of a case (``None`` when it can): it must be a non-empty string without
    path separators, ``..``, a leading dot, a drive or control characters."""
    if not isinstance(case_id, str):
        return f"case id must be a string, got {type(case_id).__name__}"
    if not case_id.strip():
        return "case id is empty"
    if any(separator in case_id for separator in ("/", "\\")):
        return f"case id '{case_id}' contains a path separator"
    if case_id.startswith("."):
        return f"case id '{case_id}' starts with a dot ('..', hidden names and relative paths are not case ids)"
    if PureWindowsPath(case_id).drive or ":" in case_id:
        return f"case id '{case_id}' contains ':' (a drive or stream name)"
    if any(ord(character) < 32 or character == "\x7f" for character in case_id):
        return f"case id {case_id!r} contains a control character"
    if case_id != case_id.strip():
        return f"case id '{case_id}' starts or ends with white space"
    return None


def check_case_id(case_id: object, where: str) -> str:
    """``case_id`` when it is a safe file name; else :class:`UnsafePathError` ``"<where>: <problem>"``."""
    problem = case_id_problem(case_id)
    if problem:
        raise UnsafePathError(f"{where}: {problem}")
    return case_id  # type: ignore[return-value]


def _lexical(path: Path) -> Path:
    """Absolute and normalised (``..`` folded) without following symlinks."""
    return Path(os.path.normpath(os.path.abspath(path)))


def is_under(path: str | Path, folder: str | Path) -> bool:
    """True when ``path``, as written (``..`` folded, symlinks not followed), lies in ``folder`` or is it."""
    inner, outer = _lexical(Path(path)), _lexical(Path(folder))
    return inner == outer or outer in inner.parents


def output_path(folder: str | Path, *parts: str) -> Path:
    """``folder / parts...``, refused (:class:`UnsafePathError`) when a part is absolute or the result leaves ``folder``."""
    folder = Path(folder)
    for part in parts:
        if Path(part).is_absolute() or PurePosixPath(str(part).replace("\\", "/")).is_absolute():
            raise UnsafePathError(f"{folder}: output name '{part}' is an absolute path")
    path = folder.joinpath(*parts)
    if not is_under(path, folder):
        raise UnsafePathError(f"{folder}: output path {path} would lie outside the output folder")
    return path


def dataset_file(root: str | Path, reference: str, where: str, allow_outside: bool = False) -> Path:
    """The file a dataset description refers to, ``root / reference``.

    Refused (:class:`UnsafePathError` naming ``where``) when ``reference`` is empty, absolute or leads outside
    ``root`` through ``..``, unless ``allow_outside`` (the user's explicit opt-in). Symlinks inside ``root``
    are followed wherever they point.
    """
    root = Path(root)
    if not isinstance(reference, str) or not reference.strip():
        raise UnsafePathError(f"{where}: file reference must be a non-empty string, got {reference!r}")
    path = root / reference
    if not allow_outside and (Path(reference).is_absolute() or not is_under(path, root)):
        raise UnsafePathError(
            f"{where}: '{reference}' lies outside the dataset folder {root} "
            "(allow it explicitly: allow_outside_dataset / --allow-outside-dataset)"
        )
    return path


__all__ = ["UnsafePathError", "case_id_problem", "check_case_id", "dataset_file", "is_under", "output_path"]
