"""Static checks of the Slicer module and the extension's CMake lists (no Slicer application here).

What runs only inside Slicer (the module's widgets, its ScriptedLoadableModuleTest) is checked
here for what can be checked without it: the file compiles, the template's classes exist with the
right bases, every file named in the CMake lists exists, every library source is listed for Slicer,
and the library itself never touches the Slicer application.
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULE = ROOT / "WSSSCam" / "WSSSCam.py"


def cmake_list(cmake_file: Path, variable: str, substitutions: dict[str, str] | None = None) -> list[str]:
    """The entries of ``set(variable ...)`` in a CMake file, with ${VAR} substituted."""
    text = cmake_file.read_text()
    match = re.search(rf"set\(\s*{variable}\s+(.*?)\)", text, re.S)
    assert match, f"{cmake_file} does not set {variable}"
    entries = match.group(1).split()
    for key, value in (substitutions or {}).items():
        entries = [entry.replace("${" + key + "}", value) for entry in entries]
    return entries


def test_module_file_compiles_and_has_the_template_classes():
    tree = ast.parse(MODULE.read_text(), filename=str(MODULE))
    bases = {node.name: [ast.unparse(b) for b in node.bases] for node in tree.body if isinstance(node, ast.ClassDef)}
    assert bases["WSSSCam"] == ["ScriptedLoadableModule"]
    assert bases["WSSSCamWidget"][0] == "ScriptedLoadableModuleWidget"
    assert bases["WSSSCamLogic"] == ["ScriptedLoadableModuleLogic"]
    assert bases["WSSSCamTest"] == ["ScriptedLoadableModuleTest"]
    compile(MODULE.read_text(), str(MODULE), "exec")


def test_module_cmake_lists_name_existing_files():
    cmake = ROOT / "WSSSCam" / "CMakeLists.txt"
    names = {"MODULE_NAME": "WSSSCam"}
    listed = cmake_list(cmake, "MODULE_PYTHON_SCRIPTS", names) + cmake_list(cmake, "MODULE_PYTHON_RESOURCES", names)
    missing = [entry for entry in listed if not (cmake.parent / entry).is_file()]
    assert not missing, f"{cmake} lists files that do not exist: {missing}"


def test_every_library_source_is_listed_for_slicer_and_exists():
    listed = cmake_list(ROOT / "CMakeLists.txt", "WSSSCamLib_PYTHON_SCRIPTS")
    on_disk = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "WSSSCamLib").rglob("*.py"))
    assert sorted(listed) == on_disk, "CMakeLists.txt WSSSCamLib_PYTHON_SCRIPTS differs from the files in WSSSCamLib/"


def test_top_level_cmake_is_a_slicer_extension():
    text = (ROOT / "CMakeLists.txt").read_text()
    for needed in ("project(WSSSCam)", 'set(EXTENSION_DEPENDS "PyTorch")', "find_package(Slicer REQUIRED)",
                   "add_subdirectory(WSSSCam)", "WITH_SUBDIR", "Slicer_EXTENSION_GENERATE_CONFIG", "Slicer_EXTENSION_CPACK"):
        assert needed in text, needed
    icon = re.search(r"EXTENSION_ICONURL \"[^\"]*/main/(.*?)\"", text).group(1)
    assert (ROOT / icon).is_file()


FORBIDDEN = [r"^\s*import qt\b", r"^\s*import ctk\b", r"^\s*from qt\b", r"slicer\.app\b", r"slicer\.modules\b", r"slicer\.mrmlScene\b"]


@pytest.mark.parametrize("path", sorted((ROOT / "WSSSCamLib").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_library_does_not_use_the_slicer_application(path):
    text = path.read_text()
    for pattern in FORBIDDEN:
        assert not re.search(pattern, text, re.M), f"{path} uses {pattern}"
