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
    for needed in ("project(WSSSCam)", 'set(EXTENSION_DEPENDS "PyTorch")', "find_package(Slicer REQUIRED)",
                   "add_subdirectory(WSSSCam)", "Slicer_EXTENSION_GENERATE_CONFIG", "Slicer_EXTENSION_CPACK"):
        assert needed in text, needed
    icon = re.search(r"EXTENSION_ICONURL \"[^\"]*/main/(.*?)\"", text).group(1)
    assert (ROOT / icon).is_file()


FORBIDDEN = [r"^\s*import qt\b", r"^\s*import ctk\b", r"^\s*from qt\b", r"slicer\.app\b", r"slicer\.modules\b", r"slicer\.mrmlScene\b"]


@pytest.mark.parametrize("path", sorted((ROOT / "WSSSCamLib").rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_library_does_not_use_the_slicer_application(path):
    text = path.read_text()
    for pattern in FORBIDDEN:
        assert not re.search(pattern, text, re.M), f"{path} uses {pattern}"


# --- the panel: .ui file, parameter node, widgets the code uses -------------------------------------

import tomllib  # noqa: E402
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
    for needed in ("qMRMLNodeComboBox", "qMRMLCheckableNodeComboBox", "qMRMLSegmentSelectorWidget", "ctkCollapsibleButton",
                   "ctkSliderWidget", "ctkPathLineEdit", "ctkDirectoryButton", "QProgressBar", "QPushButton"):
        assert needed in classes, needed
    declared = {c.findtext("class") for c in root.iter("customwidget")}
    custom = {c for c in classes if c.startswith(("qMRML", "ctk"))}
    assert custom <= declared, f"custom widgets without a <customwidget> entry: {custom - declared}"
    # every MRML widget gets the scene from the top widget's mrmlSceneChanged signal
    receivers = {c.findtext("receiver") for c in root.iter("connection") if c.findtext("signal") == "mrmlSceneChanged(vtkMRMLScene*)"}
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
    assert set(fields) - set(bound) == manual, "every field is bound to a widget or listed in MANUAL_FIELDS (and not both)"
    assert not manual & set(bound)
    # each manual field is written by the widget code
    text = MODULE.read_text()
    for field in manual:
        assert re.search(rf"_parameterNode\.{field}\s*=", text), f"manual field {field} is never set from its widget"
    # widget kinds fit the field types (the parameterNodeWrapper connectors)
    kinds = {"vtkMRML": "qMRMLNodeComboBox", "Path": "ctkPathLineEdit", "bool": "QCheckBox", "int": "QSpinBox",
             "float": "ctkSliderWidget", "Choice": "QComboBox", "str": "QLineEdit"}
    widgets = ui_widgets()
    for parameter, widget_name in bound.items():
        annotation = fields[parameter]
        expected = next(kind for key, kind in kinds.items() if key in annotation)
        assert widgets[widget_name].get("class") == expected, f"{widget_name} ({widgets[widget_name].get('class')}) for {parameter}: {annotation}"


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


def test_library_requirements_installed_in_slicer_match_pyproject():
    dependencies = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.split(r"[<>=!~ ]", d)[0].lower() for d in dependencies}
    offered = set(module_constant("LIBRARY_REQUIREMENTS").values())
    assert offered == names - {"torch", "torchvision", "numpy"}, "LIBRARY_REQUIREMENTS must list every pip dependency except torch/torchvision/numpy"


def test_module_follows_the_template_and_keeps_the_science_in_the_library():
    text = MODULE.read_text()
    for needed in ('slicer.util.loadUI(self.resourcePath("UI/WSSSCam.ui"))', "slicer.util.childWidgetVariables(uiWidget)",
                   "connectGui(self.ui)", "disconnectGui(", "qt.QTimer()", "qt.QSettings()", "PyTorchUtils.PyTorchUtilsLogic().installTorch(askConfirmation=True)",
                   "slicer.util.pip_install(", "--python-script", "isOutOfMemory", "ScriptedLoadableModuleTest"):
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
