"""A stand-in for the part of Slicer's build that places scripted modules in the install tree.

It reads CMake lists (a small subset of the CMake language: ``set``, ``file(GLOB|GLOB_RECURSE)``,
``add_subdirectory``, ``if(BUILD_TESTING)``/``endif``, ``slicerMacroBuildScriptedModule``,
``slicer_add_python_unittest``; every other command is ignored) and copies files the way these
macros do, as read in Slicer's and CTK's sources:

* ``CMake/SlicerMacroBuildScriptedModule.cmake``: ``WITH_SUBDIR`` sets the destination subfolder to
  the *name of the folder the macro is called from* (``get_filename_component(... CMAKE_CURRENT_SOURCE_DIR
  NAME)``); without it the macro passes ``NO_INSTALL_SUBDIR``. Every listed SCRIPT/RESOURCE must exist
  (``value`` or ``value.py``) or configuration fails.
* ``CMake/ctkMacroCompilePythonScript.cmake`` (CTK): a script whose extension does not match "py"
  gets ".py" appended; a relative script path is kept as given below the destination folder
  ``<build>/lib/Slicer-X.Y/qt-scripted-modules<subdir>``; an absolute one is made relative to
  ``CMAKE_CURRENT_BINARY_DIR``; resources keep their relative path. Install is
  ``install(DIRECTORY <destination>[/])``: with ``NO_INSTALL_SUBDIR`` the trailing slash installs
  the folder's contents into ``qt-scripted-modules``, without it the folder itself goes below it.

Slicer adds ``qt-scripted-modules`` (not its subfolders) to ``sys.path``.
"""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path

SCRIPTED_MODULES_DIR = "lib/Slicer-5.8/qt-scripted-modules"


@dataclass
class ScriptedModule:
    """One ``slicerMacroBuildScriptedModule`` call: where it was called and what it copies."""

    name: str
    source_dir: Path
    binary_dir: Path
    scripts: list[str]
    resources: list[str]
    with_subdir: bool


@dataclass
class Configured:
    """What configuring the lists produced."""

    modules: list[ScriptedModule] = field(default_factory=list)
    unittests: list[tuple[Path, str]] = field(default_factory=list)  # (source dir, SCRIPT)


class CMakeError(RuntimeError):
    """Configuration would fail (as CMake's FATAL_ERROR)."""


def _strip_comments(text: str) -> str:
    """The text without ``#`` line comments (a ``#`` inside a quoted argument is kept)."""
    lines = []
    for line in text.splitlines():
        quoted = False
        for index, char in enumerate(line):
            if char == '"':
                quoted = not quoted
            elif char == "#" and not quoted:
                line = line[:index]
                break
        lines.append(line)
    return "\n".join(lines)


def commands(text: str) -> list[tuple[str, list[str]]]:
    """``name(arguments)`` calls of a CMake file, arguments split as CMake does (quotes kept whole)."""
    result = []
    for match in re.finditer(r"([A-Za-z_][A-Za-z0-9_]*)\s*\(((?:[^()]|\([^()]*\))*)\)", _strip_comments(text)):
        arguments = [a[1:-1] if a.startswith('"') else a for a in re.findall(r'"[^"]*"|[^\s"]+', match.group(2))]
        result.append((match.group(1), arguments))
    return result


def _expand(value: str, variables: dict[str, str]) -> str:
    return re.sub(r"\$\{([A-Za-z0-9_]+)\}", lambda m: variables.get(m.group(1), ""), value)


def _split_list(values: list[str], variables: dict[str, str]) -> list[str]:
    out: list[str] = []
    for value in values:
        out.extend(v for v in _expand(value, variables).split(";") if v)
    return out


def _glob(arguments: list[str], source_dir: Path, recurse: bool) -> list[str]:
    """``file(GLOB[_RECURSE] var [RELATIVE dir] [CONFIGURE_DEPENDS] patterns...)``: sorted paths,
    absolute unless RELATIVE is given."""
    relative = None
    patterns = []
    items = iter(arguments)
    for item in items:
        if item == "RELATIVE":
            relative = Path(next(items))
        elif item in ("CONFIGURE_DEPENDS", "FOLLOW_SYMLINKS", "LIST_DIRECTORIES"):
            continue
        else:
            patterns.append(item)
    found = set()
    for pattern in patterns:
        pattern_path = Path(pattern) if Path(pattern).is_absolute() else source_dir / pattern
        base, name = pattern_path.parent, pattern_path.name
        candidates = base.rglob("*") if recurse else base.glob("*")
        for path in candidates:
            if path.is_file() and fnmatch.fnmatchcase(path.name, name):
                found.add(path)
    paths = sorted(found)
    return [os.path.relpath(p, relative) if relative else str(p) for p in paths]


def configure(
    source_dir: Path,
    binary_dir: Path,
    text: str | None = None,
    variables: dict[str, str] | None = None,
    result: Configured | None = None,
) -> Configured:
    """Configure ``source_dir/CMakeLists.txt`` (or ``text`` in its place), recursing into subdirectories."""
    result = result if result is not None else Configured()
    variables = dict(variables or {"BUILD_TESTING": "ON"})
    variables["CMAKE_CURRENT_SOURCE_DIR"] = str(source_dir)
    variables["CMAKE_CURRENT_BINARY_DIR"] = str(binary_dir)
    text = (source_dir / "CMakeLists.txt").read_text() if text is None else text
    skipping = []
    for name, arguments in commands(text):
        lowered = name.lower()
        if lowered == "if":
            condition = _expand(" ".join(arguments), variables)
            value = variables.get(condition, condition)
            skipping.append(value.upper() in ("", "0", "OFF", "NO", "FALSE", "N") or value.endswith("-NOTFOUND"))
            continue
        if lowered == "endif":
            skipping.pop()
            continue
        if any(skipping):
            continue
        if lowered == "set":
            variables[arguments[0]] = ";".join(_split_list(arguments[1:], variables))
        elif lowered == "file" and arguments[0] in ("GLOB", "GLOB_RECURSE"):
            expanded = [_expand(a, variables) for a in arguments[2:]]
            variables[arguments[1]] = ";".join(_glob(expanded, source_dir, arguments[0] == "GLOB_RECURSE"))
        elif lowered == "add_subdirectory":
            sub = _expand(arguments[0], variables)
            configure(source_dir / sub, binary_dir / sub, None, variables, result)
        elif lowered == "slicermacrobuildscriptedmodule":
            result.modules.append(_scripted_module(arguments, variables, source_dir, binary_dir))
        elif lowered == "slicer_add_python_unittest":
            parsed = _keywords(_split_list(arguments, variables), {"SCRIPT", "TESTNAME_PREFIX"}, {"SLICER_ARGS"}, set())
            result.unittests.append((source_dir, parsed["SCRIPT"][0]))
    return result


def _keywords(arguments: list[str], single: set[str], multi: set[str], options: set[str]) -> dict[str, list[str]]:
    """``cmake_parse_arguments``: keyword -> values (options -> [] when present)."""
    parsed: dict[str, list[str]] = {}
    current = None
    for argument in arguments:
        if argument in options:
            parsed[argument] = []
            current = None
        elif argument in single or argument in multi:
            parsed[argument] = []
            current = argument
        elif current is None:
            raise CMakeError(f"unknown keyword {argument!r}")
        else:
            parsed[current].append(argument)
            if current in single:
                current = None
    return parsed


def _scripted_module(
    arguments: list[str], variables: dict[str, str], source_dir: Path, binary_dir: Path
) -> ScriptedModule:
    parsed = _keywords(
        _split_list(arguments, variables),
        {"NAME"},
        {"SCRIPTS", "RESOURCES"},
        {"WITH_GENERIC_TESTS", "WITH_SUBDIR", "VERBOSE"},
    )
    for key in ("SCRIPTS", "RESOURCES"):
        for value in parsed.get(key, []):
            absolute = Path(value) if Path(value).is_absolute() else source_dir / value
            if not absolute.exists() and not Path(f"{absolute}.py").exists():
                raise CMakeError(f"slicerMacroBuildScriptedModule({key}) given nonexistent file or directory '{value}'")
    return ScriptedModule(
        parsed["NAME"][0],
        source_dir,
        binary_dir,
        parsed.get("SCRIPTS", []),
        parsed.get("RESOURCES", []),
        "WITH_SUBDIR" in parsed,
    )


def build_and_install(configured: Configured, top_binary_dir: Path, install_prefix: Path) -> Path:
    """Copy every module's scripts and resources into the build tree, then install; returns the
    installed ``qt-scripted-modules`` folder."""
    installs = []
    for module in configured.modules:
        subdir = module.source_dir.name if module.with_subdir else ""
        destination = (
            top_binary_dir / SCRIPTED_MODULES_DIR / subdir if subdir else top_binary_dir / SCRIPTED_MODULES_DIR
        )
        for script in module.scripts:
            name = Path(script).name
            extension = name[name.index(".") :] if "." in name else ""
            file = script if re.search("py", extension) else f"{script}.py"
            source = Path(file) if Path(file).is_absolute() else module.source_dir / file
            target = os.path.relpath(file, module.binary_dir) if Path(file).is_absolute() else file
            _copy(source, destination / target)
        for resource in module.resources:
            source = Path(resource) if Path(resource).is_absolute() else module.source_dir / resource
            _copy(source, destination / resource)
        installs.append((destination, not module.with_subdir))
    installed = install_prefix / SCRIPTED_MODULES_DIR
    for destination, contents_only in installs:
        target = installed if contents_only else installed / destination.name
        shutil.copytree(destination, target, dirs_exist_ok=True)
    return installed


def _copy(source: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(source, target)
