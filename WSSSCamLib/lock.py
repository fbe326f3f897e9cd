"""A lock on an output folder, so two processes never do the same work there at once.

Each process registers itself as ``<folder>/.locks/<host>-<pid>.lock`` (JSON: pid, host, shard, start
time) and holds an operating-system lock on that file for as long as it runs. The OS releases it when the
process ends in any way (``kill -9`` included), so a lock left by a dead process is recognised and removed
by the next run, never by hand. A second process whose shard overlaps a live one's is refused with
:class:`LockError` naming that process; disjoint shards (``i/n`` and ``j/n``, ``i != j``) share the folder.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from .errors import UserError

LOCKS = ".locks"


class LockError(UserError, RuntimeError):
    """Another live process works on the same output folder (and an overlapping shard)."""


def _try_lock(handle) -> bool:
    """Take an exclusive, non-blocking OS lock on an open file; False when another process holds it."""
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False


def shards_overlap(first: tuple[int, int], second: tuple[int, int]) -> bool:
    """Whether two shards ``(i, n)`` may do the same work: only ``i/n`` and ``j/n`` with ``i != j`` are disjoint."""
    return not (first[1] == second[1] and first[0] != second[0])


DESCRIPTION_WAIT = 2.0
"""Seconds to wait for a live process that has just taken its lock to write its description."""


def _live_owner(path: Path) -> dict | None:
    """The description of the live process holding ``path``, or None after removing a dead process's lock.

    A process takes its lock first and writes its description just after; a description read in between is
    empty, so it is read again for up to :data:`DESCRIPTION_WAIT` seconds (two shards started at the same
    moment must not see each other as the whole folder). Still empty: ``{}`` (treated as every shard).
    """
    try:
        with open(path, "r+") as handle:
            if _try_lock(handle):  # nobody holds it: its process has ended
                path.unlink(missing_ok=True)
                return None
    except FileNotFoundError:
        return None
    deadline = time.monotonic() + DESCRIPTION_WAIT
    while True:
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:  # ended meanwhile
            return None
        except (OSError, json.JSONDecodeError):
            if time.monotonic() >= deadline:
                return {}
            time.sleep(0.05)
            try:
                with open(path, "r+") as handle:
                    if _try_lock(handle):  # its owner ended before describing itself
                        path.unlink(missing_ok=True)
                        return None
            except FileNotFoundError:
                return None


def live_locks(folder: str | Path) -> list[dict]:
    """Descriptions of the live processes registered on ``folder`` (dead ones' locks are removed on the way)."""
    owners = []
    for path in sorted((Path(folder) / LOCKS).glob("*.lock")):
        owner = _live_owner(path)
        if owner is not None:
            owners.append(owner)
    return owners


@contextmanager
def folder_lock(folder: str | Path, shard: tuple[int, int] = (0, 1), what: str = "run") -> Iterator[bool]:
    """Hold a lock on ``folder`` for this process and ``shard`` while the block runs.

    Yields True when no other live process is registered on the folder (the caller may then tidy it,
    e.g. remove stale temporaries). Raises :class:`LockError` when a live process holds an overlapping shard.
    """
    folder = Path(folder)
    created = not folder.exists()
    locks = folder / LOCKS
    locks.mkdir(parents=True, exist_ok=True)
    mine = locks / f"{socket.gethostname()}-{os.getpid()}.lock"
    owned = False
    description = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "shard": list(shard),
        "what": what,
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    try:
        with _registered(mine, description) as handle:
            if handle is None:
                raise LockError(f"{folder}: this process already holds a lock on it")
            owned = True
            others = [
                owner
                for path in sorted(locks.glob("*.lock"))
                if path != mine
                for owner in [_live_owner(path)]
                if owner is not None
            ]
            for owner in others:
                theirs = tuple(owner.get("shard", (0, 1)))
                if shards_overlap(shard, theirs):
                    raise LockError(
                        f"{folder}: in use by process {owner.get('pid', '?')} on {owner.get('host', '?')} "
                        f"({owner.get('what', 'run')}, shard {theirs[0]}/{theirs[1]}, since {owner.get('started', '?')}); "
                        "wait for it to finish, run a disjoint shard (--shard i/n) or use another output folder"
                    )
            yield not others
    finally:
        if owned:
            mine.unlink(missing_ok=True)
        _remove_if_empty(locks)
        if created:  # a run refused before writing anything leaves no empty output folder behind
            _remove_if_empty(folder)


@contextmanager
def _registered(mine: Path, description: dict) -> Iterator:
    """Hold the OS lock on ``mine`` with ``description`` in it; yields its open handle, or None when this process
    already holds it. On POSIX the file is written and locked under a name the ``*.lock`` scan does not see and
    then renamed (the lock follows the file), so every visible lock is locked and described; elsewhere it is
    locked in place and described just after (:func:`_live_owner` re-reads an empty one)."""
    if mine.exists() and _live_owner(mine) is not None:
        yield None  # a live lock with this host and pid: this very process
        return
    if os.name == "posix":
        staging = mine.with_name(mine.name + "-new")
        with open(staging, "w") as handle:
            _try_lock(handle)  # a fresh file only this process knows
            handle.write(json.dumps(description))
            handle.flush()
            os.replace(staging, mine)
            yield handle
        return
    with open(mine, "a+") as handle:
        if not _try_lock(handle):
            yield None
            return
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps(description))
        handle.flush()
        yield handle


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:  # not empty (another process's lock, or results), or already gone
        pass


__all__ = ["LockError", "folder_lock", "live_locks", "shards_overlap"]
