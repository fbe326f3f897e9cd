"""The command line under bad input and faults: one line naming the file/key and the problem, exit status 1,
a traceback only with --debug; a study folder is locked, resumes clean of stale temporaries, and a full disk
during the report names the file and changes nothing already written."""

import errno
import fcntl
import hashlib
import json
import pathlib

import pytest
import yaml

from WSSSCamLib.cli import error_line, main
from WSSSCamLib.data.datasets import DatasetError
from WSSSCamLib.data.synthetic import write_synthetic_dataset


def snapshot(folder):
    """Every file under ``folder`` with its SHA-256 (what 'nothing already written changed' compares)."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def cli_error(argv):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    assert isinstance(code, str) and "\n" not in code and "Traceback" not in code, code
    return code


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """A finished tiny study (2 folds, one small CNN, 1 epoch, Grad-CAM) run through the CLI."""
    root = tmp_path_factory.mktemp("cli")
    write_synthetic_dataset(root / "data", cases=4, shape=(4, 16, 16), positive_fraction=0.5, seed=2)
    config = {
        "dataset": "data",
        "output": "out",
        "folds": 2,
        "device": "cpu",
        "recipe": {"size": 16},
        "overlays": 0,
        "models": [{"name": "m", "architecture": "small-cnn", "train": {"epochs": 1, "patience": 0, "augment": False}}],
        "methods": ["grad-cam"],
        "thresholds": ["t=0.5"],
    }
    (root / "study.yaml").write_text(yaml.safe_dump(config))
    assert main(["study", str(root / "study.yaml"), "--quiet"]) == 0
    return root


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "{tmp}/nowhere", "--out", "{tmp}/o"], "wssscam train: {tmp}/nowhere/dataset.json: missing"),
        (["train", "{tmp}", "--out", "{tmp}/o", "--device", "gpu"], "wssscam train: --device: 'gpu' is not a device"),
        (["study", "{tmp}/none.yaml"], "wssscam study: {tmp}/none.yaml: cannot read"),
        (
            ["study", "{tmp}/bad.yaml"],
            "wssscam study: {tmp}/bad.yaml: folds: expected an integer, got the string 'two'",
        ),
        (["merge", "{tmp}/a", "--out", "{tmp}/m"], "wssscam merge: {tmp}/a/folds.json: missing"),
        (["demo", "--out", "{tmp}/d", "--device", "tpu:9"], "wssscam demo: --device: 'tpu:9' is not a device"),
    ],
)
def test_user_errors_are_one_line_with_exit_status_1(tmp_path, argv, expected):
    (tmp_path / "bad.yaml").write_text(
        "dataset: d\noutput: o\nfolds: two\nmodels: [{name: m, architecture: small-cnn}]\nmethods: [grad-cam]\n"
    )
    before = snapshot(tmp_path)
    assert cli_error([a.format(tmp=tmp_path) for a in argv]).startswith(expected.format(tmp=tmp_path))
    assert snapshot(tmp_path) == before and not (tmp_path / "o").exists() and not (tmp_path / "d").exists()


def test_debug_shows_the_exception_itself(tmp_path):
    with pytest.raises(DatasetError, match="dataset.json: missing"):
        main(["--debug", "train", str(tmp_path), "--out", str(tmp_path / "o")])


def test_the_error_contract_for_any_subcommand():
    assert error_line("predict", DatasetError("x.json: bad")) == ("wssscam predict: x.json: bad", 1)
    assert error_line("predict", OSError(errno.ENOSPC, "No space left on device", "/out/a.nii.gz")) == (
        "wssscam predict: /out/a.nii.gz: No space left on device",
        1,
    )
    line, status = error_line("predict", ZeroDivisionError("division by zero"))
    assert status == 3 and line.startswith(
        "wssscam predict: internal error (ZeroDivisionError: division by zero); run again with --debug"
    )


def test_bad_config_changes_nothing_in_a_finished_study(study):
    before = snapshot(study / "out")
    config = yaml.safe_load((study / "study.yaml").read_text())
    (study / "typo.yaml").write_text(yaml.safe_dump({**config, "recipe": {"size": 16, "axes": "K"}}))
    assert cli_error(["study", str(study / "typo.yaml")]).startswith(
        f"wssscam study: {study / 'typo.yaml'}: recipe: unknown key 'axes'"
    )
    assert snapshot(study / "out") == before


def test_disk_full_during_the_report_names_the_file_and_changes_nothing(study, monkeypatch):
    before = snapshot(study / "out")
    real = pathlib.Path.write_text

    def full_disk(self, *args, **kwargs):
        if self.name.endswith(".tmp"):
            raise OSError(errno.ENOSPC, "No space left on device")  # as write() reports it: no file name
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "write_text", full_disk)
    line = cli_error(["study", str(study / "study.yaml"), "--stages", "report", "--quiet"])
    assert line == f"wssscam study: {study / 'out' / 'config.json'}: cannot write (No space left on device)"
    monkeypatch.undo()
    assert snapshot(study / "out") == before  # no temporary left, nothing half-written


def hold_lock(folder, pid, shard):
    """A lock file held (flock) as a live process on ``shard`` would hold it; returns the open handle."""
    (folder / ".locks").mkdir(exist_ok=True)
    path = folder / ".locks" / f"elsewhere-{pid}.lock"
    path.write_text(
        json.dumps({"pid": pid, "host": "elsewhere", "shard": list(shard), "what": "wssscam study", "started": "then"})
    )
    handle = open(path, "r+")  # noqa: SIM115 - held open across the test, like a running process
    fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def test_a_second_process_on_the_same_folder_is_refused(study):
    handle = hold_lock(study / "out", 4242, (0, 1))
    before = snapshot(study / "out")
    try:
        line = cli_error(["study", str(study / "study.yaml"), "--stages", "report", "--quiet"])
        assert line.startswith(
            f"wssscam study: {study / 'out'}: in use by process 4242 on elsewhere (wssscam study, shard 0/1"
        )
        assert snapshot(study / "out") == before
    finally:
        handle.close()


def test_disjoint_shards_share_the_folder_and_dead_locks_are_cleared(study):
    handle = hold_lock(study / "out", 4343, (1, 2))
    try:  # shard 0/2 does not overlap 1/2: it runs (every unit is already done)
        assert main(["study", str(study / "study.yaml"), "--stages", "cams", "--shard", "0/2", "--quiet"]) == 0
        assert cli_error(
            ["study", str(study / "study.yaml"), "--stages", "cams", "--shard", "1/2", "--quiet"]
        ).endswith("or use another output folder")
    finally:
        handle.close()  # the "process" dies: its lock file stays, unlocked
    assert (study / "out" / ".locks" / "elsewhere-4343.lock").exists()
    assert main(["study", str(study / "study.yaml"), "--stages", "cams", "--quiet"]) == 0
    assert not (study / "out" / ".locks").exists()  # the dead lock was recognised and removed, not by hand


def test_resume_removes_stale_temporaries_and_nothing_else(study):
    out = study / "out"
    unit = next((out / "units").iterdir())
    stale = [
        unit / ".fold0.json.k2j4x9q1.tmp",
        out / ".results.csv.a1b2c3d4.tmp",
        unit / ".fold0.slices.parquet.zzzzzzzz.tmp.nii.gz",
    ]
    for path in stale:
        path.write_bytes(b"")
    keep = [out / ".notes.tmp", out / "mine.tmp", unit / ".keep"]
    for path in keep:
        path.write_text("user file")
    before = {k: v for k, v in snapshot(out).items() if not any(k.endswith(p.name) for p in stale)}
    assert main(["study", str(study / "study.yaml"), "--stages", "cams", "--quiet"]) == 0
    assert not any(p.exists() for p in stale) and all(p.exists() for p in keep)
    assert snapshot(out) == before
