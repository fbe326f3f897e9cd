"""The import graph of WSSSCamLib against the layering that README.md ("Layout") documents.

Every module's imports are read with ``ast`` (function-local imports included). A module may import
its own package and any package of a lower layer; no module imports a private name (``_x``) of
another package; and no two modules import each other, directly or round a longer circle.
"""

import ast
from pathlib import Path

LIBRARY = Path(__file__).resolve().parents[2] / "WSSSCamLib"

LAYERS = (  # lowest first; a name is a top-level module or package of WSSSCamLib ("" = the package itself)
    {"", "errors"},
    {"atomic", "paths", "devices", "schema", "lock", "dependencies"},
    {"data", "figures"},
    {"models"},
    {"cams"},
    {"metrics"},
    {"masks"},
    {"refine"},
    {"training", "inference"},
    {"predict"},
    {"report"},
    {"study"},
    {"panel"},
    {"mrml"},
    {"demo"},
    {"cli"},
    {"sample"},
    {"__main__"},
)
RANK = {name: rank for rank, names in enumerate(LAYERS) for name in names}


def module_name(path: Path) -> str:
    parts = ("WSSSCamLib", *path.relative_to(LIBRARY).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(LIBRARY.rglob("*.py"))}


def imports(module: str) -> list[tuple[str, str]]:
    """(imported module, imported name or '') of every import statement of ``module`` inside WSSSCamLib."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(alias.name, "") for alias in node.names if alias.name.split(".")[0] == "WSSSCamLib"]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] == "WSSSCamLib":
                for alias in node.names:  # "from . import x" of a submodule imports that module
                    submodule = f"{target}.{alias.name}"
                    found.append((submodule, "") if submodule in MODULES else (target, alias.name))
    return found


def top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_is_in_a_layer():
    assert sorted({top(m) for m in MODULES} - set(RANK)) == []


def test_no_import_reaches_up_or_across_the_layers():
    wrong = []
    for module in MODULES:
        for target, _ in imports(module):
            here, there = top(module), top(target)
            if here != there and RANK[there] >= RANK[here]:
                wrong.append(f"{module} -> {target}")
    assert wrong == []


def test_no_private_name_is_imported_from_another_package():
    wrong = [
        f"{module} -> {target}.{name}"
        for module in MODULES
        for target, name in imports(module)
        if name.startswith("_") and not name.startswith("__") and top(target) != top(module)
    ]
    assert wrong == []


def test_no_import_circles():
    graph = {
        module: sorted({target for target, _ in imports(module) if target in MODULES} - {module}) for module in MODULES
    }
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    circles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in graph[module]:
            if state.get(target) == 1:
                circles.append(
                    " -> ".join(path[path.index(target) :] + [module, target])
                    if target in path
                    else f"{module} -> {target}"
                )
            elif target not in state:
                visit(target, [*path, module])
        state[module] = 2

    for module in graph:
        if module not in state:
            visit(module, [])
    assert circles == []
