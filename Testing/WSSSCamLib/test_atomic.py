"""Atomic writes: an error while writing leaves the old file intact and no temporary behind."""

import pytest

from WSSSCamLib.atomic import atomic_path, write_text


def test_failed_write_keeps_the_previous_file(tmp_path):
    target = tmp_path / "table.csv"
    write_text(target, "old\n")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as temporary:
            temporary.write_text("half a new fi")
            raise RuntimeError("killed mid-write")
    assert target.read_text() == "old\n"
    assert [p.name for p in tmp_path.iterdir()] == ["table.csv"]
