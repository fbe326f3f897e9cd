"""Atomic file writing: write to a temporary name in the target folder, then rename over the target.

A reader never sees a half-written file, and an error leaves the previous file (if any) untouched and
no temporary behind. A process killed while writing leaves a temporary ``.<name>.<random>.tmp``;
:func:`remove_stale_temporaries` clears them when a run resumes. An ``OSError`` without a file name
(a full disk reports none) is raised again naming the target file.
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write to; on success it replaces ``path`` (permissions as for a new file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(handle)
    try:
        yield Path(temporary)
        os.chmod(temporary, 0o666 & ~_umask())
        os.replace(temporary, path)
    except OSError as error:
        Path(temporary).unlink(missing_ok=True)
        if error.filename is None:
            raise OSError(error.errno or errno.EIO, f"cannot write ({error.strerror or error})", str(path)) from error
        raise
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    with atomic_path(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


TEMPORARY_NAME = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp(\.[A-Za-z0-9.]+)?$")
"""Names :func:`atomic_path` gives its temporaries (``mkstemp``'s 8 random characters; writers that need a
suffix add one, e.g. ``.tmp.nii.gz``)."""


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete the temporaries that killed writers left anywhere under ``folder``; returns them.

    Call it only while no other process writes into ``folder`` (see :mod:`WSSSCamLib.lock`).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return []
    removed = []
    for path in folder.rglob(".*.tmp*"):
        if path.is_file() and not path.is_symlink() and TEMPORARY_NAME.match(path.name):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
