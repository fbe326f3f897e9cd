"""Dependencies from one source: the module's requirement files equal pyproject.toml's pins, and the
library stays importable on the Python of the oldest supported Slicer (5.8: Python 3.9.10)."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
import tomllib

from WSSSCamLib.dependencies import missing_requirements, read_requirements, requirement_name, split_pytorch

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
RESOURCES = ROOT / "WSSSCam" / "Resources"
SLICER_PYTHON = (3, 9)  # Slicer 5.8.x: Slicer_REQUIRED_PYTHON_VERSION "3.9.10" in Slicer's CMakeLists.txt


def test_requirements_txt_equals_the_pyproject_pins():
    assert read_requirements((RESOURCES / "requirements.txt").read_text()) == PYPROJECT["project"]["dependencies"]
    assert (
        read_requirements((RESOURCES / "requirements-dicom.txt").read_text())
        == PYPROJECT["project"]["optional-dependencies"]["dicom"]
    )


def test_requires_python_is_the_minimum_slicers_python():
    assert PYPROJECT["project"]["requires-python"] == ">={}.{}".format(*SLICER_PYTHON)
    readme = (ROOT / "README.md").read_text()
    assert "Slicer 5.8" in readme and "Python 3.9" in readme


def test_pytorch_goes_to_the_pytorch_extension_with_its_pins():
    pytorch, others = split_pytorch(read_requirements((RESOURCES / "requirements.txt").read_text()))
    assert pytorch == {"torch": ">=2.2,<=2.14.1", "torchvision": ">=0.17,<=0.29.1"}
    assert "pyyaml>=6" in others and not any(requirement_name(r).startswith("torch") for r in others)
    assert requirement_name("PyYAML_x.y>=6") == "pyyaml-x-y"


def test_missing_requirements_are_the_uninstalled_distributions():
    installed = {"numpy": "2.0", "scipy": "1.11"}
    assert missing_requirements(["numpy>=1.24", "scipy>=1.10", "pynrrd>=1"], installed.get) == ["pynrrd>=1"]


def sources() -> list[Path]:
    return sorted((ROOT / "WSSSCamLib").rglob("*.py")) + [ROOT / "WSSSCam" / "WSSSCam.py"]


@pytest.mark.parametrize("path", sources(), ids=lambda p: str(p.relative_to(ROOT)))
def test_sources_parse_and_avoid_newer_runtime_features_on_the_minimum_slicers_python(path):
    """Syntax of Python 3.9 (ast feature_version), plus the run-time features of 3.10+ this code base
    could plausibly use: PEP 604 unions evaluated at run time (annotations without
    ``from __future__ import annotations``, isinstance with ``|``), zip(strict=), dataclass slots/kw_only,
    tomllib, match statements. Not a run on a real 3.9 interpreter (none is available here)."""
    text = path.read_text()
    tree = ast.parse(text, filename=str(path), feature_version=SLICER_PYTHON)
    future = any(
        isinstance(n, ast.ImportFrom) and n.module == "__future__" and any(a.name == "annotations" for a in n.names)
        for n in tree.body
    )
    problems = []
    for node in ast.walk(tree):
        annotations = []
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            arguments = node.args.posonlyargs + node.args.args + node.args.kwonlyargs
            annotations = [a.annotation for a in arguments if a.annotation] + ([node.returns] if node.returns else [])
        elif isinstance(node, ast.AnnAssign):
            annotations = [node.annotation]
        if not future and any(
            isinstance(n, ast.BinOp) and isinstance(n.op, ast.BitOr) for a in annotations for n in ast.walk(a)
        ):
            problems.append(f"line {node.lineno}: X | Y annotation without from __future__ import annotations")
        if isinstance(node, ast.Call):
            name = getattr(node.func, "id", getattr(node.func, "attr", ""))
            keywords = {k.arg for k in node.keywords}
            if name == "zip" and "strict" in keywords:
                problems.append(f"line {node.lineno}: zip(strict=) is Python 3.10")
            if name == "dataclass" and keywords & {"slots", "kw_only", "match_args"}:
                problems.append(f"line {node.lineno}: dataclass({keywords}) is Python 3.10")
            if name == "isinstance" and len(node.args) == 2 and isinstance(node.args[1], ast.BinOp):
                problems.append(f"line {node.lineno}: isinstance with X | Y is Python 3.10")
    if re.search(r"^\s*(import tomllib|from tomllib)", text, re.MULTILINE):
        problems.append("tomllib is Python 3.11")
    assert not problems, problems
