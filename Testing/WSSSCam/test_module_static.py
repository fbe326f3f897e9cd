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


def test_library_sources_are_globbed_relative_and_installed_without_subdir():
    """Every WSSSCamLib/*.py is picked up by a RELATIVE glob (absolute paths would be re-based on the
    binary folder by ctkMacroCompilePythonScript) and the library is not built WITH_SUBDIR from the
    top level (that would nest it under the checkout's name); test_packaging.py installs and imports it."""
    text = (ROOT / "CMakeLists.txt").read_text()
    glob = re.search(r"file\(GLOB_RECURSE WSSSCamLib_PYTHON_SCRIPTS(.*?)\)", text, re.S)
    assert glob and "RELATIVE ${CMAKE_CURRENT_SOURCE_DIR}" in glob.group(1) and "WSSSCamLib/*.py" in glob.group(1)
    call = re.search(r"slicerMacroBuildScriptedModule\(\s*NAME WSSSCamLib(.*?)\)", text, re.S)
    assert call and "WITH_SUBDIR" not in call.group(1)


def test_top_level_cmake_is_a_slicer_extension():
    text = (ROOT / "CMakeLists.txt").read_text()
    for needed in (
        "project(WSSSCam)",
        'set(EXTENSION_DEPENDS "PyTorch")',
        "find_package(Slicer REQUIRED)",
        "add_subdirectory(WSSSCam)",
        "Slicer_EXTENSION_GENERATE_CONFIG",
        "Slicer_EXTENSION_CPACK",
    ):
        assert needed in text, needed
    icon = re.search(r"EXTENSION_ICONURL \"[^\"]*/main/(.*?)\"", text).group(1)
    assert (ROOT / icon).is_file()


FORBIDDEN = [
    r"^\s*import qt\b",
    r"^\s*import ctk\b",
    r"^\s*from qt\b",
    r"slicer\.app\b",
    r"slicer\.modules\b",
    r"slicer\.mrmlScene\b",
]


@pytest.mark.parametrize("path", sorted((ROOT / "WSSSCamLib").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_library_does_not_use_the_slicer_application(path):
    text = path.read_text()
    for pattern in FORBIDDEN:
        assert not re.search(pattern, text, re.M), f"{path} uses {pattern}"


# --- the panel: .ui file, parameter node, widgets the code uses -------------------------------------

import xml.etree.ElementTree as ElementTree  # noqa: E402

UI_FILE = ROOT / "WSSSCam" / "Resources" / "UI" / "WSSSCam.ui"


def ui_widgets() -> dict[str, ElementTree.Element]:
    """Named widgets of the .ui file (name -> element)."""
    root = ElementTree.parse(UI_FILE).getroot()
    return {w.get("name"): w for w in root.iter("widget")}


def ui_parameter_names() -> dict[str, str]:
    """SlicerParameterName dynamic property -> the widget carrying it."""
    names = {}
    for name, widget in ui_widgets().items():
        for prop in widget.findall("property"):
            if prop.get("name") == "SlicerParameterName":
                assert prop.get("stdset") == "0", f"{name}: SlicerParameterName must be a dynamic property (stdset=0)"
                names[prop.findtext("string")] = name
    return names


def module_tree() -> ast.Module:
    return ast.parse(MODULE.read_text(), filename=str(MODULE))


def class_node(name: str) -> ast.ClassDef:
    return next(n for n in module_tree().body if isinstance(n, ast.ClassDef) and n.name == name)


def parameter_fields() -> dict[str, str]:
    """Annotated fields of the parameterNodeWrapper class: name -> annotation source."""
    cls = class_node("WSSSCamParameterNode")
    assert [ast.unparse(d) for d in cls.decorator_list] == ["parameterNodeWrapper"]
    return {n.target.id: ast.unparse(n.annotation) for n in cls.body if isinstance(n, ast.AnnAssign)}


def module_constant(name: str):
    for node in module_tree().body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == name for t in node.targets):
            return ast.literal_eval(node.value)
    raise AssertionError(f"{MODULE} defines no {name}")


def test_ui_file_is_qt_designer_xml_with_slicer_widgets():
    root = ElementTree.parse(UI_FILE).getroot()
    assert root.tag == "ui" and root.findtext("class") == "WSSSCam"
    top = root.find("widget")
    assert top.get("class") == "qMRMLWidget" and top.get("name") == "WSSSCam"
    classes = {w.get("class") for w in root.iter("widget")}
    for needed in (
        "qMRMLNodeComboBox",
        "qMRMLCheckableNodeComboBox",
        "qMRMLSegmentSelectorWidget",
        "ctkCollapsibleButton",
        "ctkSliderWidget",
        "ctkPathLineEdit",
        "ctkDirectoryButton",
        "QProgressBar",
        "QPushButton",
    ):
        assert needed in classes, needed
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    custom = {c for c in classes if c.startswith(("qMRML", "ctk"))}
    assert custom <= declared, f"custom widgets without a <customwidget> entry: {custom - declared}"
    # every MRML widget gets the scene from the top widget's mrmlSceneChanged signal
    receivers = {
        c.findtext("receiver")
        for c in root.iter("connection")
        if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"
    }
    mrml = {name for name, w in ui_widgets().items() if w.get("class", "").startswith("qMRML") and name != "WSSSCam"}
    assert mrml <= receivers, f"MRML widgets without the scene: {mrml - receivers}"
    buttons = {name: w for name, w in ui_widgets().items() if w.get("class") == "QPushButton"}
    assert {"applyButton", "cancelButton"} <= set(buttons)
    names = list(ui_widgets())
    assert len(names) == len(set(names)), "widget names in the .ui must be unique"


def test_every_widget_the_module_uses_exists_in_the_ui():
    used = set(re.findall(r"self\.ui\.([A-Za-z_][A-Za-z0-9_]*)", MODULE.read_text()))
    assert {"applyButton", "cancelButton", "progressBar", "methodsList"} <= used
    missing = used - set(ui_widgets())
    assert not missing, f"WSSSCam.py uses widgets that {UI_FILE.name} does not define: {sorted(missing)}"


def test_slicer_parameter_names_map_to_parameter_node_fields_and_back():
    bound = ui_parameter_names()
    fields = parameter_fields()
    manual = set(module_constant("MANUAL_FIELDS"))
    assert set(bound) <= set(fields), f"SlicerParameterName without a parameter-node field: {set(bound) - set(fields)}"
    assert set(fields) - set(bound) == manual, (
        "every field is bound to a widget or listed in MANUAL_FIELDS (and not both)"
    )
    assert not manual & set(bound)
    # each manual field is written by the widget code
    text = MODULE.read_text()
    for field in manual:
        assert re.search(rf"_parameterNode\.{field}\s*=", text), f"manual field {field} is never set from its widget"
    # widget kinds fit the field types (the parameterNodeWrapper connectors)
    kinds = {
        "vtkMRML": "qMRMLNodeComboBox",
        "Path": "ctkPathLineEdit",
        "bool": "QCheckBox",
        "int": "QSpinBox",
        "float": "ctkSliderWidget",
        "Choice": "QComboBox",
        "str": "QLineEdit",
    }
    widgets = ui_widgets()
    for parameter, widget_name in bound.items():
        annotation = fields[parameter]
        expected = next(kind for key, kind in kinds.items() if key in annotation)
        assert widgets[widget_name].get("class") == expected, (
            f"{widget_name} ({widgets[widget_name].get('class')}) for {parameter}: {annotation}"
        )


def test_choices_and_method_names_agree_with_the_ui_and_the_library():
    widgets = ui_widgets()

    def items(name):
        return [i.findtext("property/string") for i in widgets[name].findall("item")]

    assert items("thresholdModeComboBox") == list(module_constant("THRESHOLD_MODES"))
    assert items("ensembleRuleComboBox") == list(module_constant("ENSEMBLE_RULES"))
    from WSSSCamLib.cams.methods import METHODS
    from WSSSCamLib.masks import MODES, RULES

    assert list(module_constant("CAM_METHOD_NAMES")) == list(METHODS)
    assert list(module_constant("THRESHOLD_MODES")) == list(MODES)
    assert list(module_constant("ENSEMBLE_RULES")) == ["none", *RULES]
    assert set(module_constant("DEFAULT_METHODS")) <= set(METHODS)


def test_module_follows_the_template_and_keeps_the_science_in_the_library():
    text = MODULE.read_text()
    for needed in (
        'slicer.util.loadUI(self.resourcePath("UI/WSSSCam.ui"))',
        "slicer.util.childWidgetVariables(uiWidget)",
        "connectGui(self.ui)",
        "disconnectGui(",
        "qt.QTimer()",
        "qt.QSettings()",
        "PyTorchUtils.PyTorchUtilsLogic().installTorch(",
        "packaging.pip_ensure(",
        "slicer.util.pip_install(",
        "slicer.util.restart()",
        "--python-script",
        "registerCustomSampleDataSource(",
        'translate("qSlicerAbstractCoreModule", "Segmentation")',
        "isOutOfMemory",
        "ScriptedLoadableModuleTest",
    ):
        assert needed in text, needed
    module = class_node("WSSSCam")
    init = ast.unparse(module)
    for attribute in ("title", "categories", "contributors", "helpText", "acknowledgementText"):
        assert f"self.parent.{attribute}" in init, attribute
    # no numerical work in the module: no torch maths, no numpy array science outside the test class
    logic = ast.unparse(class_node("WSSSCamLogic")) + ast.unparse(class_node("WSSSCamWidget"))
    for forbidden in ("torch.nn", "np.", "numpy", "F.interpolate", ".backward("):
        assert forbidden not in logic, f"{forbidden} in the Widget/Logic: keep the science in WSSSCamLib"
    test_class = ast.unparse(class_node("WSSSCamTest"))
    assert "synthetic_batch" in test_class and "logic.process(" in test_class and "logic.export(" in test_class


# --- signal flow: no slot of a bound widget writes the parameter node ------------------------------


def connected_slots(cls: ast.ClassDef) -> list[tuple[str, str]]:
    """(widget name, slot method name) for each ``self.ui.<widget>.connect(signal, self.<slot>)``."""
    pairs = []
    for node in ast.walk(cls):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "connect"
            and isinstance(node.func.value, ast.Attribute)
            and ast.unparse(node.func.value.value) == "self.ui"
            and len(node.args) == 2
        ):
            target = node.args[1]
            called = (
                [
                    n.func.attr
                    for n in ast.walk(target)
                    if isinstance(n, ast.Call)
                    and isinstance(n.func, ast.Attribute)
                    and ast.unparse(n.func.value) == "self"
                ]
                if isinstance(target, ast.Lambda)
                else []
            )
            if isinstance(target, ast.Attribute) and ast.unparse(target.value) == "self":
                called = [target.attr]
            pairs.extend((node.func.value.attr, name) for name in called)
    return pairs


def writes_parameter_node(method: ast.FunctionDef) -> list[int]:
    """Lines of ``method`` that write the parameter node: an assignment to an attribute of
    ``self._parameterNode`` (or of a local bound to it), ``setattr`` on it, or ``setValue``."""
    aliases = {"self._parameterNode"}
    for node in ast.walk(method):
        if isinstance(node, ast.Assign) and ast.unparse(node.value) == "self._parameterNode":
            aliases |= {ast.unparse(t) for t in node.targets}
    lines = []
    for node in ast.walk(method):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, (ast.AugAssign, ast.AnnAssign))
            else []
        )
        if any(isinstance(t, ast.Attribute) and ast.unparse(t.value) in aliases for t in targets):
            lines.append(node.lineno)
        if isinstance(node, ast.Call):
            function = ast.unparse(node.func)
            if (function == "setattr" and node.args and ast.unparse(node.args[0]) in aliases) or any(
                function == f"{a}.setValue" for a in aliases
            ):
                lines.append(node.lineno)
    return lines


def reachable(cls: ast.ClassDef, start: str) -> set[str]:
    """Methods of ``cls`` reachable from ``start`` through ``self.<method>(...)`` calls (timers excluded:
    ``qt.QTimer.singleShot(0, self.x)`` runs later, outside the current update)."""
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    seen, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in seen or name not in methods:
            continue
        seen.add(name)
        for node in ast.walk(methods[name]):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and ast.unparse(node.func.value) == "self"
            ):
                todo.append(node.func.attr)
    return seen


def slot_violations(cls: ast.ClassDef, bound_widgets: set[str]) -> list[str]:
    methods = {n.name: n for n in cls.body if isinstance(n, ast.FunctionDef)}
    problems = []
    for widget, slot in connected_slots(cls):
        if widget in bound_widgets:
            for name in reachable(cls, slot):
                problems += [
                    f"{widget} -> {slot} -> {name}: line {line}" for line in writes_parameter_node(methods[name])
                ]
        elif writes_parameter_node(methods[slot]):
            first = methods[slot].body[0]
            guard = ast.unparse(first.test) if isinstance(first, ast.If) else ""
            if "self._syncing" not in guard:
                problems.append(f"{widget} -> {slot} writes the parameter node without returning first while syncing")
    return problems


def test_no_slot_of_a_bound_widget_writes_the_parameter_node():
    bound = set(ui_parameter_names().values())
    widget_class = class_node("WSSSCamWidget")
    assert ("opacitySlider", "onOpacityChanged") in connected_slots(widget_class)
    assert slot_violations(widget_class, bound) == []
    # the node observer (not a slot) is where the node is read; corrections go through a timer
    observer = ast.unparse(
        next(n for n in widget_class.body if isinstance(n, ast.FunctionDef) and n.name == "onParameterNodeModified")
    )
    assert "blockSignals(True)" in observer and "qt.QTimer.singleShot(0, self._applyCorrections)" in observer


def test_the_slot_check_finds_the_defects_of_the_old_panel():
    """The check fails on the old wiring: onCheckpointChanged (bound path line edit) refilled the class
    combo whose slot wrote the node, and onThresholdModeChanged moved the bound slider."""
    old = ast.parse("""
class WSSSCamWidget:
    def setup(self):
        self.ui.checkpointPathLineEdit.connect("currentPathChanged(QString)", self.onCheckpointChanged)
        self.ui.targetClassComboBox.connect("currentIndexChanged(int)", self.onTargetClassChanged)
    def onCheckpointChanged(self, path):
        self.fillClasses()
    def fillClasses(self):
        self._parameterNode.targetClass = "lesion"
    def onTargetClassChanged(self, index):
        if self._parameterNode:
            self._parameterNode.targetClass = self.ui.targetClassComboBox.currentText
""").body[0]
    problems = slot_violations(old, {"checkpointPathLineEdit"})
    assert any("checkpointPathLineEdit -> onCheckpointChanged -> fillClasses" in p for p in problems)
    assert any("targetClassComboBox -> onTargetClassChanged" in p for p in problems)


def test_module_imports_the_panel_rules_and_no_qt_in_them():
    text = MODULE.read_text()
    assert "from WSSSCamLib.panel import" in text
    panel = (ROOT / "WSSSCamLib" / "panel.py").read_text()
    assert not re.search(r"^\s*(import|from) (qt|ctk|slicer)\b", panel, re.M)


# --- conventions: ExtensionsIndex description, URLs, categories, contributors -------------------------

import json  # noqa: E402


def cmake_setting(name: str) -> str:
    return re.search(rf'set\({name} "([^"]*)"\)', (ROOT / "CMakeLists.txt").read_text()).group(1)


def test_extensions_index_description_has_what_the_index_checker_requires():
    """Fields of ExtensionsIndex's schema v1.0.2 (required $schema, category, scm_url; no other keys
    than it allows) and of scripts/check_description_files.py (known category, https scm_url of a
    repository whose name starts with 'Slicer', file name = project() name not starting with 'Slicer',
    a licence file, icon and screenshot URLs in CMakeLists.txt)."""
    path = ROOT / "WSSSCam.json"
    raw = path.read_bytes()
    assert b"\r" not in raw
    entry = json.loads(raw)
    allowed = {
        "$schema",
        "category",
        "scm_url",
        "scm_revision",
        "scm_type",
        "build_dependencies",
        "dicom_support_rule",
        "build_subdirectory",
        "enabled",
        "tier",
    }
    assert {"$schema", "category", "scm_url"} <= set(entry) <= allowed
    assert entry["$schema"].startswith(
        "https://raw.githubusercontent.com/Slicer/Slicer/main/Schemas/slicer-extension-catalog-entry-schema-v1.0."
    )
    assert entry["category"] == cmake_setting("EXTENSION_CATEGORY") == "Segmentation"
    assert entry["scm_url"].startswith("https://github.com/") and entry["scm_url"].rstrip("/").split("/")[
        -1
    ].startswith("Slicer")
    assert entry["build_dependencies"] == cmake_setting("EXTENSION_DEPENDS").split()
    assert isinstance(entry["tier"], int) and 1 <= entry["tier"] <= 5
    project = re.search(r"project\(\s*([^\s)]+)", (ROOT / "CMakeLists.txt").read_text()).group(1)
    assert path.stem == project and not project.lower().startswith("slicer")
    assert (ROOT / "LICENSE").is_file()


def test_icon_and_screenshot_urls_name_files_in_the_repository():
    urls = [cmake_setting("EXTENSION_ICONURL")] + cmake_setting("EXTENSION_SCREENSHOTURLS").split()
    scm = (
        json.loads((ROOT / "WSSSCam.json").read_text())["scm_url"]
        .removesuffix(".git")
        .removeprefix("https://github.com/")
    )
    for url in urls:
        prefix = f"https://raw.githubusercontent.com/{scm}/main/"
        assert url.startswith(prefix) and url.endswith(".png"), url
        assert (ROOT / url.removeprefix(prefix)).is_file(), url


def test_contributors_agree_between_cmake_and_module():
    assert [cmake_setting("EXTENSION_CONTRIBUTORS")] == module_constant("CONTRIBUTORS")
