"""Leftovers: the output-folder lock (overlapping shards refused, dead owners cleared) and the atomic
writer's stale temporaries and error messages."""

import errno
import json
import threading
import time

import pytest

from WSSSCamLib.atomic import TEMPORARY_NAME, atomic_path, remove_stale_temporaries
from WSSSCamLib.lock import LockError, folder_lock, live_locks, shards_overlap


@pytest.mark.parametrize(
    ("first", "second", "overlap"),
    [
        ((0, 1), (0, 1), True),
        ((0, 2), (1, 2), False),
        ((0, 2), (0, 2), True),
        ((0, 1), (1, 2), True),
        ((0, 2), (1, 3), True),
    ],
)
def test_which_shards_may_share_a_folder(first, second, overlap):
    assert shards_overlap(first, second) is overlap


def test_a_lock_is_released_and_leaves_no_trace(tmp_path):
    out = tmp_path / "out"
    with folder_lock(out, (0, 1)) as alone:
        assert alone and len(live_locks(out)) == 1
        with pytest.raises(LockError, match="this process already holds a lock on it"), folder_lock(out, (1, 2)):
            pass
        assert len(live_locks(out)) == 1  # the refused attempt did not remove the holder's lock
    assert not out.exists()  # created for the run, empty again: removed


def _lock_then_describe(locks, shard, delay, taken, release):
    """Another shard's process, as seen from outside: lock taken first, its description written ``delay`` s later."""
    fcntl = pytest.importorskip("fcntl")
    path = locks / "elsewhere-1.lock"
    with open(path, "a+") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        taken.set()
        time.sleep(delay)
        handle.write(json.dumps({"pid": 1, "host": "elsewhere", "shard": list(shard), "what": "run"}))
        handle.flush()
        release.wait(5)
    path.unlink()


@pytest.mark.parametrize(("theirs", "refused"), [((1, 2), False), ((0, 2), True)])
def test_two_shards_started_at_the_same_moment(tmp_path, theirs, refused):
    """A live lock read before its owner wrote its description is read again: a disjoint shard is not
    mistaken for the whole folder (the race of two ``--shard i/2`` runs started together), an overlapping one is refused."""
    out = tmp_path / "out"
    (out / ".locks").mkdir(parents=True)
    taken, release = threading.Event(), threading.Event()
    other = threading.Thread(target=_lock_then_describe, args=(out / ".locks", theirs, 0.3, taken, release))
    other.start()
    taken.wait(5)
    try:
        if refused:
            with pytest.raises(LockError, match=f"shard {theirs[0]}/{theirs[1]}"), folder_lock(out, (0, 2)):
                pass
        else:
            with folder_lock(out, (0, 2)) as alone:
                assert not alone
    finally:
        release.set()
        other.join()


def test_stale_temporaries_match_only_the_writers_names(tmp_path):
    names = {
        ".a.csv.abcd_123.tmp": True,
        ".model.pt.x1y2z3w4.tmp": True,
        ".m.nii.gz.q1w2e3r4.tmp.nii.gz": True,
        ".notes.tmp": False,
        "plain.tmp": False,
        ".a.csv.abc.tmp": False,
    }
    for name in names:
        (tmp_path / name).write_text("")
    removed = {p.name for p in remove_stale_temporaries(tmp_path)}
    assert removed == {name for name, stale in names.items() if stale}
    assert all(bool(TEMPORARY_NAME.match(name)) is stale for name, stale in names.items())


def test_a_write_error_without_a_file_name_names_the_target(tmp_path):
    target = tmp_path / "report.html"
    with pytest.raises(OSError) as error, atomic_path(target):
        raise OSError(errno.ENOSPC, "No space left on device")
    assert error.value.filename == str(target) and error.value.errno == errno.ENOSPC
    assert list(tmp_path.iterdir()) == []


def test_a_second_lock_in_the_same_process_is_refused_and_a_dead_ones_is_replaced(tmp_path):
    out = tmp_path / "out"
    locks = out / ".locks"
    locks.mkdir(parents=True)
    import os
    import socket

    stale = locks / f"{socket.gethostname()}-{os.getpid()}.lock"  # left by a dead process that had our pid
    stale.write_text(json.dumps({"pid": os.getpid(), "shard": [0, 1]}))
    with folder_lock(out, (0, 2)) as alone:
        assert alone and [o["shard"] for o in live_locks(out)] == [[0, 2]]
        assert not list(locks.glob("*-new"))  # registered under its final name only
        with pytest.raises(LockError, match="this process already holds a lock on it"), folder_lock(out, (1, 2)):
            pass
    assert not locks.exists()  # every lock gone, the folder tidied


def test_a_lock_becomes_visible_only_once_locked_and_described(tmp_path, monkeypatch):
    """The race of two runs started together: a scan must never meet a ``*.lock`` file that is not yet locked
    (it would be taken for a dead process's and removed) or not yet described."""
    fcntl = pytest.importorskip("fcntl")
    import os

    import WSSSCamLib.lock as lock_module

    out = tmp_path / "out"
    seen = []
    real_replace = os.replace

    def spy(source, target):
        with open(source) as other:  # another open file description: the OS lock must already be held
            try:
                fcntl.flock(other.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                locked = False
            except OSError:
                locked = True
        seen.append((sorted((out / ".locks").glob("*.lock")), json.loads(open(source).read())["shard"], locked))
        return real_replace(source, target)

    monkeypatch.setattr(lock_module.os, "replace", spy)
    with folder_lock(out, (1, 3)):
        assert [o["shard"] for o in live_locks(out)] == [[1, 3]]
    assert seen == [([], [1, 3], True)]
