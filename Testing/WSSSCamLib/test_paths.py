"""Bad input, path safety: case ids that are not plain names, output paths leaving the output folder and
dataset file references leaving the dataset folder are refused before anything is written."""

import json
import shutil

import pytest

from WSSSCamLib.cli import main
from WSSSCamLib.data.datasets import load_case, read_csv_dataset, read_decathlon
from WSSSCamLib.data.synthetic import write_synthetic_dataset
from WSSSCamLib.paths import (
    UnsafePathError,
    check_case_id,
    dataset_file,
    is_under,
    output_path,
)
from WSSSCamLib.study.layout import unit_paths


def files_under(folder):
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def cli_error(argv):
    """The one line a user error gives (SystemExit with a message: exit status 1)."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert isinstance(exit_info.value.code, str), exit_info.value.code
    assert "\n" not in exit_info.value.code
    return exit_info.value.code


@pytest.fixture(scope="module")
def source(tmp_path_factory):
    return write_synthetic_dataset(tmp_path_factory.mktemp("paths") / "data", cases=2, shape=(3, 8, 8), seed=0)


@pytest.mark.parametrize(
    ("case_id", "problem"),
    [
        ("../../outside/evil", "path separator"),
        ("/abs/evil", "path separator"),
        ("..", "starts with a dot"),
        (".hidden", "starts with a dot"),
        ("", "empty"),
        ("   ", "empty"),
        ("a\\b", "path separator"),
        ("c:evil", "':'"),
        ("bad\x00id", "control character"),
        (" padded", "white space"),
        (7, "must be a string"),
    ],
)
def test_unsafe_case_ids_are_refused(case_id, problem):
    with pytest.raises(UnsafePathError, match=problem) as error:
        check_case_id(case_id, "cases.csv, line 2")
    assert str(error.value).startswith("cases.csv, line 2: ")


@pytest.mark.parametrize("case_id", ["phantom_001", "BraTS-2021.00012", "case 7", "a..b"])
def test_plain_case_ids_pass(case_id):
    assert check_case_id(case_id, "x") == case_id


def test_output_paths_stay_under_the_output_folder(tmp_path):
    assert output_path(tmp_path, "units", "case", "fold0.json") == tmp_path / "units" / "case" / "fold0.json"
    for parts in (("units", "../../evil"), ("/etc", "passwd"), ("..",)):
        with pytest.raises(UnsafePathError, match=str(tmp_path)):
            output_path(tmp_path, *parts)
    assert is_under(tmp_path / "a" / ".." / "b", tmp_path) and not is_under(tmp_path / ".." / "b", tmp_path)
    with pytest.raises(UnsafePathError, match="path separator"):  # defence in depth: units never name a path
        unit_paths(tmp_path, "../../outside/evil", 0)


def test_dataset_references_stay_inside_unless_allowed(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    for reference in ("../../../../etc/passwd", "/etc/passwd", "imagesTr/../../x.nii.gz"):
        with pytest.raises(UnsafePathError, match="outside the dataset folder"):
            dataset_file(root, reference, "dataset.json: training[0].image")
    assert dataset_file(root, "../x.nii.gz", "w", allow_outside=True) == root / "../x.nii.gz"
    with pytest.raises(UnsafePathError, match="non-empty string"):
        dataset_file(root, "", "dataset.json: training[0].label")


def write_csv_case(source, folder, case_id):
    """A CSV dataset whose only row names ``case_id``; returns the CSV."""
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy(source / "imagesTr" / "phantom_000_0000.nii.gz", folder / "ok.nii.gz")
    table = folder / "cases.csv"
    table.write_text(f"case,label\nok,1\n{case_id},0\n")
    return table


@pytest.mark.parametrize("case_id", ["../../outside/evil", "/tmp/evil", ".."])
def test_train_refuses_a_traversing_csv_case_id_and_writes_nothing(source, tmp_path, case_id):
    table = write_csv_case(source, tmp_path / "in", case_id)
    before = files_under(tmp_path)
    line = cli_error(
        ["train", str(tmp_path / "in"), "--csv", str(table), "--out", str(tmp_path / "out"), "--device", "cpu"]
    )
    assert line.startswith(f"wssscam train: {table}, line 3: case id ")
    assert files_under(tmp_path) == before  # no output folder, nothing outside it


def test_duplicate_case_ids_are_named(source, tmp_path):
    table = write_csv_case(source, tmp_path, "ok")
    with pytest.raises(ValueError, match=r"cases.csv: case ids must be unique; repeated: \['ok'\]"):
        read_csv_dataset(tmp_path, table)


def decathlon_copy(source, target, entries):
    shutil.copytree(source, target)
    meta = json.loads((target / "dataset.json").read_text())
    meta["training"] = entries
    (target / "dataset.json").write_text(json.dumps(meta))
    return target


def test_decathlon_image_named_dots_gives_no_case_id_dotdot(source, tmp_path):
    root = decathlon_copy(
        source, tmp_path / "d", [{"image": "./imagesTr/...nii.gz", "label": "./labelsTr/phantom_000.nii.gz"}]
    )
    with pytest.raises(UnsafePathError, match=r"training\[0\].image: case id '..' starts with a dot"):
        read_decathlon(root)


def test_dataset_json_reference_outside_the_folder(source, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.copy(source / "imagesTr" / "phantom_000_0000.nii.gz", outside / "elsewhere_0000.nii.gz")
    entries = [
        {"image": "../outside/elsewhere.nii.gz", "label": "./labelsTr/phantom_000.nii.gz"},
        {"image": "./imagesTr/phantom_001.nii.gz", "label": "./labelsTr/phantom_001.nii.gz"},
    ]
    root = decathlon_copy(source, tmp_path / "d", entries)
    line = cli_error(["train", str(root), "--out", str(tmp_path / "out"), "--device", "cpu"])
    assert line.startswith(
        f"wssscam train: {root / 'dataset.json'}: training[0].image: '../outside/elsewhere.nii.gz' lies outside"
    )
    assert not (tmp_path / "out").exists()
    dataset = read_decathlon(root, allow_outside=True)  # the explicit opt-in
    assert load_case(dataset.cases[0]).image.shape_kji == (3, 8, 8)
    entries = [{"image": "./imagesTr/phantom_001.nii.gz", "label": "/etc/passwd"}]
    decathlon_copy(source, tmp_path / "e", entries)
    with pytest.raises(UnsafePathError, match=r"training\[0\].label: '/etc/passwd' lies outside"):
        read_decathlon(tmp_path / "e")


def test_symlinked_files_inside_the_dataset_are_followed(source, tmp_path):
    outside = tmp_path / "store"
    outside.mkdir()
    shutil.copy(source / "imagesTr" / "phantom_000_0000.nii.gz", outside / "real.nii.gz")
    root = decathlon_copy(
        source, tmp_path / "d", [{"image": "./imagesTr/linked.nii.gz", "label": "./labelsTr/phantom_000.nii.gz"}]
    )
    (root / "imagesTr" / "linked_0000.nii.gz").symlink_to(outside / "real.nii.gz")
    dataset = read_decathlon(root)
    assert [c.case_id for c in dataset.cases] == ["linked"]
    assert load_case(dataset.cases[0]).image.shape_kji == (3, 8, 8)
