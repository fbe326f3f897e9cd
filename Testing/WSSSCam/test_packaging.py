"""The installed extension's layout, derived from the CMake lists with ``cmake_standin`` (the install
rules of Slicer's ``slicerMacroBuildScriptedModule`` and CTK's ``ctkMacroCompilePythonScript``),
materialised in a temporary folder and imported by a fresh interpreter whose ``sys.path`` holds only
the installed ``qt-scripted-modules`` folder, the standard library and site-packages (without ``.pth``
processing, so the editable install of this checkout cannot leak in) -- what Slicer gives a module.

Control case: a library laid out like Slicer's own ``Modules/Scripted/DICOMLib`` (its own folder, a
``WITH_SUBDIR`` call inside it, extension-less script names) lands in ``qt-scripted-modules/DICOMLib``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from cmake_standin import CMakeError, build_and_install, configure

ROOT = Path(__file__).resolve().parents[2]
SITE_PACKAGES = sysconfig.get_paths()["purelib"]

IMPORT_ALL = """
import importlib, json, pkgutil, sys
sys.path[:] = [{installed!r}] + [p for p in sys.path if p and "site-packages" not in p] + [{site!r}]
package = importlib.import_module({package!r})
modules = pkgutil.walk_packages(package.__path__, package.__name__ + ".")
names = [package.__name__] + [m.name for m in modules if not m.name.endswith(".__main__")]  # __main__ runs the CLI
files = {{name: importlib.import_module(name).__file__ for name in names}}
print(json.dumps(files))
"""


def import_in_clean_interpreter(installed: Path, package: str, cwd: Path) -> dict[str, str]:
    """Import ``package`` and all its submodules from ``installed`` in a fresh ``python -S``;
    module name -> file it was loaded from. Raises ``AssertionError`` with the child's error."""
    code = IMPORT_ALL.format(installed=str(installed), site=SITE_PACKAGES, package=package)
    done = subprocess.run(
        [sys.executable, "-S", "-c", code],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=600,
        check=False,
        env={"PATH": "/usr/bin:/bin", "HOME": str(cwd)},
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def install_tree(source: Path, tmp_path: Path, text: str | None = None) -> Path:
    configured = configure(source, tmp_path / "build", text)
    return build_and_install(configured, tmp_path / "build", tmp_path / "install")


def test_standin_reproduces_dicomlib_with_subdir_layout(tmp_path):
    """Control: a WITH_SUBDIR library called from its own folder installs as qt-scripted-modules/<folder>/."""
    scripted = tmp_path / "src" / "Modules" / "Scripted"
    library = scripted / "DICOMLib"
    library.mkdir(parents=True)
    (scripted / "CMakeLists.txt").write_text("set(modules DICOMLib)\nadd_subdirectory(DICOMLib)\n")
    (library / "CMakeLists.txt").write_text(
        "set(MODULE_NAME DICOMLib)\n"
        "string(TOUPPER ${MODULE_NAME} MODULE_NAME_UPPER)\n"
        "set(MODULE_PYTHON_SCRIPTS\n  __init__\n  DICOMUtils\n  )\n"
        "set(MODULE_PYTHON_RESOURCES\n  Resources/storescu-seg.cfg\n  )\n"
        "slicerMacroBuildScriptedModule(\n  NAME ${MODULE_NAME}\n  SCRIPTS ${MODULE_PYTHON_SCRIPTS}\n"
        "  RESOURCES ${MODULE_PYTHON_RESOURCES}\n  WITH_SUBDIR\n  )\n"
    )
    (library / "__init__.py").write_text("from .DICOMUtils import answer\n")
    (library / "DICOMUtils.py").write_text("answer = 42\n")
    (library / "Resources").mkdir()
    (library / "Resources" / "storescu-seg.cfg").write_text("cfg\n")
    installed = install_tree(scripted, tmp_path)
    assert sorted(str(p.relative_to(installed)) for p in installed.rglob("*") if p.is_file()) == [
        "DICOMLib/DICOMUtils.py",
        "DICOMLib/Resources/storescu-seg.cfg",
        "DICOMLib/__init__.py",
    ]
    files = import_in_clean_interpreter(installed, "DICOMLib", tmp_path)
    assert files["DICOMLib"] == str(installed / "DICOMLib" / "__init__.py")


def test_standin_fails_on_a_listed_file_that_does_not_exist(tmp_path):
    (tmp_path / "CMakeLists.txt").write_text("slicerMacroBuildScriptedModule(NAME X SCRIPTS missing.py)\n")
    with pytest.raises(CMakeError, match="nonexistent"):
        configure(tmp_path, tmp_path / "build")


def test_with_subdir_at_the_top_level_puts_the_library_out_of_reach(tmp_path):
    """The layout before the fix: WITH_SUBDIR called from the checkout folder nests the library under
    the checkout's name, and ``import WSSSCamLib`` fails from qt-scripted-modules."""
    text = (ROOT / "CMakeLists.txt").read_text()
    old = text.replace("SCRIPTS ${WSSSCamLib_PYTHON_SCRIPTS}", "SCRIPTS ${WSSSCamLib_PYTHON_SCRIPTS}\n  WITH_SUBDIR")
    assert old != text
    installed = install_tree(ROOT, tmp_path, old)
    assert (installed / ROOT.name / "WSSSCamLib" / "__init__.py").is_file()
    with pytest.raises(AssertionError, match="No module named 'WSSSCamLib'"):
        import_in_clean_interpreter(installed, "WSSSCamLib", tmp_path)


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    return install_tree(ROOT, tmp_path_factory.mktemp("extension"))


def test_library_imports_from_the_installed_extension(installed, tmp_path):
    files = import_in_clean_interpreter(installed, "WSSSCamLib", tmp_path)
    assert files["WSSSCamLib"] == str(installed / "WSSSCamLib" / "__init__.py")
    for needed in ("WSSSCamLib.cams", "WSSSCamLib.mrml", "WSSSCamLib.panel", "WSSSCamLib.cli"):
        assert files[needed].startswith(str(installed / "WSSSCamLib")), needed
    # every module of the checkout is there and imported from the installed copy
    on_disk = {
        ".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
        for p in (ROOT / "WSSSCamLib").rglob("*.py")
        if p.stem != "__main__"
    }
    assert set(files) == on_disk
    assert all(f.startswith(str(installed)) for f in files.values())


def test_every_library_source_is_installed(installed):
    listed = sorted(str(p.relative_to(installed)) for p in (installed / "WSSSCamLib").rglob("*.py"))
    on_disk = sorted(
        str(p.relative_to(ROOT)) for p in (ROOT / "WSSSCamLib").rglob("*.py") if "__pycache__" not in p.parts
    )
    assert listed == on_disk


def test_module_and_its_resources_are_where_resource_path_looks(installed):
    """ScriptedLoadableModule.resourcePath(name) is <folder of the module's .py>/Resources/<name>."""
    assert (installed / "WSSSCam.py").is_file()
    for resource in ("UI/WSSSCam.ui", "Icons/WSSSCam.png", "requirements.txt"):
        assert (installed / "Resources" / resource).is_file(), resource


def test_self_test_is_registered_with_ctest():
    configured = configure(ROOT, ROOT / "build-does-not-exist")
    assert (ROOT / "WSSSCam", "WSSSCam.py") in configured.unittests
    without_testing = configure(ROOT, ROOT / "build-does-not-exist", variables={"BUILD_TESTING": "OFF"})
    assert without_testing.unittests == []
