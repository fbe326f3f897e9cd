"""WSSSCam: class activation maps (CAMs) for weakly supervised segmentation, in 3D Slicer.

This is the scripted module of the WSSSCam extension. It stays thin: widgets and wiring. The
science (CAM methods, thresholds, ensembles, metrics) and the MRML bridge (volumes, heat colour
tables, segments, tables, export) live in the WSSSCamLib package, which also runs without Slicer.

Headless batch use: ``Slicer --no-main-window --python-script run_wssscam.py study study.yaml``
where run_wssscam.py holds ``import sys, slicer; from WSSSCamLib.cli import main;
slicer.util.exit(main(sys.argv[1:]))`` (see the module help and the README).
"""

import logging
import os
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer import vtkMRMLMarkupsROINode, vtkMRMLScalarVolumeNode
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin

from WSSSCamLib.panel import (
    ApplyState,
    apply_blocker,
    channel_order,
    checkpoint_kind,
    checkpoint_or_none,
    checkpoint_to_remember,
    default_export_directory,
    initial_checkpoint,
    kinds_note,
    methods_to_run,
    panel_controls,
    segment_to_select,
    target_class,
    target_class_argument,
    threshold_spec,
    threshold_value,
)

# The CAM methods offered in the panel (the names of WSSSCamLib.cams.METHODS; a static test keeps
# them equal). Listed here so the panel can be built before PyTorch is installed.
CAM_METHOD_NAMES = (
    "cam",
    "grad-cam",
    "grad-cam++",
    "hires-cam",
    "xgrad-cam",
    "layer-cam",
    "layer-cam-fused",
    "score-cam",
    "faster-score-cam",
    "eigen-cam",
    "smoothgrad-cam++",
    "seg-grad-cam",
    "seg-hires-grad-cam",
)
DEFAULT_METHODS = ("grad-cam",)
THRESHOLD_MODES = ("fixed", "percentile", "mean", "median", "otsu", "adaptive")
ENSEMBLE_RULES = ("none", "and", "or", "<", ">", "majority", "mean")

# The pinned requirements (equal to pyproject.toml's; a test keeps them equal), in Resources/.
REQUIREMENTS_FILE = "requirements.txt"
DICOM_REQUIREMENTS_FILE = "requirements-dicom.txt"
MINIMUM_SLICER_VERSION = (5, 8)

CONTRIBUTORS = ["WSSSCam developers (WSSSCam project, https://github.com/wssscam/SlicerWSSSCam)"]

SETTINGS_CHECKPOINT = "WSSSCam/lastCheckpoint"
SETTINGS_ENSEMBLE = "WSSSCam/ensembleCheckpoints"
SETTINGS_EXPORT = "WSSSCam/exportDirectory"

# Parameter-node fields set by code rather than bound to a widget through SlicerParameterName
# (widgets whose items or selection are built at run time). A static test checks this split.
MANUAL_FIELDS = (
    "targetClass",
    "device",
    "methods",
    "referenceSegmentation",
    "referenceSegmentID",
    "regionSegmentation",
    "regionSegmentID",
)


#
# WSSSCam
#


class WSSSCam(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("WSSSCam")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = CONTRIBUTORS
        self.parent.helpText = _(
            "<p>Class activation maps (CAM, Grad-CAM, Grad-CAM++, HiResCAM, XGrad-CAM, Layer-CAM, Score-CAM, "
            "Eigen-CAM, SmoothGrad-CAM++, Seg-Grad-CAM, ...) of a PyTorch classifier on the loaded volume, for "
            "weakly supervised segmentation.</p>"
            "<p><b>Inputs</b>: the volume (further volumes as more channels), a checkpoint written by WSSSCamLib "
            "with its model card (.json) beside it, the CAM method(s), target class and layer(s), the device. "
            "A segmentation network's checkpoint (e.g. a U-Net trained on pseudo-labels) adds its own segment "
            "'&lt;model&gt; segmentation' and its probability map beside the CAM results; it needs no CAM "
            "method. "
            "<b>Outputs</b>, all in the input volume's geometry: one CAM volume per method and model with its "
            "own heat colour table, shown as the slice views' foreground; the thresholded (and ensembled) "
            "results as segments; a table of Dice, IoU and volumes (cc) against a reference segment; a table of "
            "agreement (mean pairwise IoU) across methods and models. <b>Export</b>: .seg.nrrd, NIfTI label "
            "map, DICOM SEG (needs highdicom and a volume loaded from DICOM), CAM volumes as NRRD/NIfTI.</p>"
            "<p><b>Headless batch</b> (full-dataset studies): save <code>import sys, slicer; from WSSSCamLib.cli "
            "import main; slicer.util.exit(main(sys.argv[1:]))</code> as run_wssscam.py and run "
            "<code>Slicer --no-main-window --python-script run_wssscam.py study study.yaml --out results</code>; "
            "the same commands run with plain Python as <code>wssscam study study.yaml</code>.</p>"
            '<p>See the <a href="https://github.com/wssscam/SlicerWSSSCam#readme">README</a>.</p>'
        )
        self.parent.acknowledgementText = _(
            "Methods follow the papers cited in the README (Zhou 2016, Selvaraju 2017, Chattopadhay 2018, "
            "Draelos and Carin 2020, Fu 2020, Jiang 2021, Wang 2020, Muhammad and Yeasin 2020, Omeiza 2019, "
            "Vinogradova 2020). LGG MRI test data: TCGA lower-grade glioma collection (The Cancer Imaging "
            "Archive), masks by Buda et al., Computers in Biology and Medicine, 2019. PyTorch is installed through "
            "the PyTorch extension (SlicerPyTorch)."
        )

        # The sample case in the Sample Data module, once the application has started
        slicer.app.connect("startupCompleted()", registerSampleData)


#
# Register sample data sets in Sample Data module
#


def registerSampleData() -> None:
    """Add "WSSSCam phantom" to the Sample Data module: a generated phantom volume with its lesion
    segmentation and a tiny small-CNN checkpoint trained on generated phantoms (WSSSCamLib.sample;
    made on the first click, cached in Slicer's cache folder, nothing downloaded)."""
    import SampleData

    SampleData.SampleDataLogic.registerCustomSampleDataSource(
        category="WSSSCam",
        sampleName="WSSSCam phantom",
        thumbnailFileName=os.path.join(os.path.dirname(__file__), "Resources", "Icons", "WSSSCam.png"),
        uris="generated:WSSSCamLib.sample",
        fileNames="WSSSCam phantom.nrrd",
        nodeNames="WSSSCam phantom",
        customDownloader=loadSample,
    )


def loadSample(source=None):
    """Make (first time) and load the sample: the phantom volume, its lesion segmentation, and the tiny
    checkpoint set as the panel's model. Needs PyTorch (asks to install it like Apply)."""
    logic = WSSSCamLogic()
    if not logic.ensureDependencies():
        return None
    from WSSSCamLib.sample import make_sample

    folder = Path(slicer.app.cachePath) / "WSSSCam" / "sample"
    with slicer.util.tryWithErrorDisplay(_("Could not make the WSSSCam sample."), waitCursor=True):
        files = make_sample(folder)
        volume = slicer.util.loadVolume(str(files.volume), {"name": "WSSSCam phantom"})
        slicer.util.loadSegmentation(str(files.segmentation), {"name": "WSSSCam phantom lesion"})
        parameters = logic.getParameterNode()
        parameters.inputVolume = volume
        parameters.checkpointPath = files.checkpoint
        return [volume]
    return None


#
# WSSSCamParameterNode
#


@parameterNodeWrapper
class WSSSCamParameterNode:
    """The panel's state, saved with the scene.

    Bound to widgets by their SlicerParameterName: inputVolume, checkpointPath, targetLayers, batchSize,
    regionROI, thresholdMode, thresholdValue, ensembleRule, suppressNegatives, opacity, displayLevel.
    Set by code (MANUAL_FIELDS): targetClass, device, methods (comma-separated), the reference and
    region segmentations and segment IDs.
    """

    inputVolume: vtkMRMLScalarVolumeNode
    checkpointPath: Path = Path()
    targetLayers: str = ""
    batchSize: Annotated[int, WithinRange(1, 512)] = 16
    regionROI: vtkMRMLMarkupsROINode
    thresholdMode: Annotated[str, Choice(list(THRESHOLD_MODES))] = "fixed"
    thresholdValue: Annotated[float, WithinRange(0.0, 100.0)] = 0.5
    ensembleRule: Annotated[str, Choice(list(ENSEMBLE_RULES))] = "none"
    suppressNegatives: bool = False
    opacity: Annotated[float, WithinRange(0.0, 1.0)] = 0.5
    displayLevel: Annotated[float, WithinRange(0.0, 1.0)] = 0.2
    targetClass: str = ""
    device: str = "auto"
    methods: str = ",".join(DEFAULT_METHODS)
    referenceSegmentation: slicer.vtkMRMLSegmentationNode
    referenceSegmentID: str = ""
    regionSegmentation: slicer.vtkMRMLSegmentationNode
    regionSegmentID: str = ""


#
# WSSSCamWidget
#


class WSSSCamWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    """Panel of the module: binds widgets to the parameter node and to the rules of WSSSCamLib.panel.

    Signal flow: widgets carrying a SlicerParameterName are written by the parameter-node wrapper
    (connectGui) and no slot of ours is connected to them except display-only ones that never write the
    node; every reaction to the node (class list after a checkpoint change, the threshold slider's range,
    the manual widgets) runs in onParameterNodeModified with the widgets' signals blocked, and values the
    rules correct are written later, from a zero-delay timer, outside any wrapper update. Slots of the
    manual (unbound) widgets write the node only when the user changed them (never while syncing).
    A static test (Testing/WSSSCam/test_module_static.py) checks these rules on the source.
    """

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self._syncing = False
        self._shownCheckpoint = None
        self._cardError = None
        self._run = None
        self._runDevice = "auto"
        self._results = None
        self._card = None
        self._methodFlags = None
        self.timer = qt.QTimer()
        self.timer.setInterval(200)  # polls the child process; each tick only reads what arrived
        self.timer.connect("timeout()", self.onRunStep)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/WSSSCam.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = WSSSCamLogic()

        for name in CAM_METHOD_NAMES:
            item = qt.QListWidgetItem(name)
            item.setFlags(item.flags() | qt.Qt.ItemIsUserCheckable)
            self._methodFlags = item.flags()  # enabled and checkable; a method that does not apply is only checkable
            item.setCheckState(qt.Qt.Checked if name in DEFAULT_METHODS else qt.Qt.Unchecked)
            self.ui.methodsList.addItem(item)
        self.ui.deviceComboBox.addItems(self.logic.availableDevices())
        self.ui.progressBar.setVisible(False)

        settings = qt.QSettings()
        for path in self._settingsList(settings.value(SETTINGS_ENSEMBLE, "")):
            self.ui.ensembleModelsList.addItem(path)
        documents = qt.QStandardPaths.writableLocation(qt.QStandardPaths.DocumentsLocation)
        self.ui.exportDirectoryButton.directory = default_export_directory(
            settings.value(SETTINGS_EXPORT, ""), documents, qt.QDir.homePath()
        )

        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)

        # manual (unbound) widgets: these slots write the parameter node, never while syncing
        self.ui.methodsList.connect("itemChanged(QListWidgetItem*)", self.onMethodsChanged)
        self.ui.targetClassComboBox.connect("currentIndexChanged(int)", self.onTargetClassChanged)
        self.ui.deviceComboBox.connect("currentIndexChanged(int)", self.onDeviceChanged)
        self.ui.referenceSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onReferenceChanged)
        self.ui.referenceSegmentSelector.connect("currentSegmentChanged(QString)", self.onReferenceChanged)
        self.ui.regionSegmentSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onRegionChanged)
        self.ui.regionSegmentSelector.connect("currentSegmentChanged(QString)", self.onRegionChanged)
        # bound widgets: display-only slots (they never write the parameter node)
        self.ui.opacitySlider.connect("valueChanged(double)", self.onOpacityChanged)
        self.ui.displayLevelSlider.connect("valueChanged(double)", self.onDisplayLevelChanged)
        # neither bound nor writing the node
        self.ui.shownCamSelector.connect("currentNodeChanged(vtkMRMLNode*)", self.onShownCamChanged)
        self.ui.exportDirectoryButton.connect("directoryChanged(QString)", self.onExportDirectoryChanged)
        self.ui.addModelButton.connect("clicked(bool)", self.onAddModel)
        self.ui.removeModelButton.connect("clicked(bool)", self.onRemoveModel)
        self.ui.applyButton.connect("clicked(bool)", self.onApplyButton)
        self.ui.cancelButton.connect("clicked(bool)", self.onCancelButton)
        self.ui.exportSegNrrdButton.connect("clicked(bool)", lambda: self.onExport("seg.nrrd"))
        self.ui.exportNiftiButton.connect("clicked(bool)", lambda: self.onExport("nifti"))
        self.ui.exportDicomSegButton.connect("clicked(bool)", lambda: self.onExport("dicom"))
        self.ui.exportCamButton.connect("clicked(bool)", lambda: self.onExport("cam"))

        self.initializeParameterNode()

    @staticmethod
    def _settingsList(value) -> list:
        if not value:
            return []
        if isinstance(value, str):
            return [v for v in value.split(os.pathsep) if v]
        return [str(v) for v in value if v]

    # --- template boilerplate: parameter node life cycle ---

    def cleanup(self) -> None:
        self.stopRun()
        self.removeObservers()

    def enter(self) -> None:
        self.initializeParameterNode()

    def exit(self) -> None:
        self.setParameterNode(None)

    def onSceneStartClose(self, caller, event) -> None:
        self.stopRun()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        """Attach the scene's parameter node; fill what it lacks (first volume, remembered checkpoint)."""
        node = self.logic.getParameterNode()
        if not node.inputVolume:
            firstVolumeNode = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
            if firstVolumeNode:
                node.inputVolume = firstVolumeNode
        checkpoint = initial_checkpoint(node.checkpointPath, qt.QSettings().value(SETTINGS_CHECKPOINT, ""))
        if checkpoint is not None and checkpoint != checkpoint_or_none(node.checkpointPath):
            node.checkpointPath = Path(checkpoint)
        self.setParameterNode(node)

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
        self._parameterNode = inputParameterNode
        self._shownCheckpoint = None
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.onParameterNodeModified)
            self.onParameterNodeModified()

    # --- from the parameter node to the widgets the wrapper does not manage ---

    def onParameterNodeModified(self, caller=None, event=None) -> None:
        """Show the node in the manual widgets and derived widget settings (signals blocked), then
        schedule the corrections the rules ask for."""
        p = self._parameterNode
        if p is None:
            return
        blocked = [
            self.ui.targetClassComboBox,
            self.ui.deviceComboBox,
            self.ui.methodsList,
            self.ui.thresholdValueSlider,
            self.ui.referenceSegmentSelector,
            self.ui.regionSegmentSelector,
        ]
        self._syncing = True
        previous = [widget.blockSignals(True) for widget in blocked]
        try:
            self._showCheckpoint(p)
            self._showThresholdSpec(p)
            self._showManualFields(p)
            self._showControls(p)
        finally:
            for widget, was in zip(blocked, previous):
                widget.blockSignals(was)
            self._syncing = False
        if self._corrections():
            qt.QTimer.singleShot(0, self._applyCorrections)
        self._checkCanApply()

    def _showCheckpoint(self, p) -> None:
        """After a checkpoint change: read its card, fill the class list (the saved class or the last)."""
        path = checkpoint_or_none(p.checkpointPath)
        if path != self._shownCheckpoint:
            self._shownCheckpoint = path
            self._card, self._cardError = None, None
            self.ui.targetClassComboBox.clear()
            if path is None:
                self.ui.modelCardLabel.text = _("(no model loaded)")
            else:
                try:
                    self._card = self.logic.readCard(path)
                except Exception as error:
                    self._cardError = str(error)
                    self.ui.modelCardLabel.text = _("Cannot use this checkpoint: {error}").format(error=error)
                else:
                    self.ui.targetClassComboBox.addItems(list(self._card.class_names))
                    self.ui.targetLayersLineEdit.placeholderText = ", ".join(
                        [self._card.target_layer] + list(self._card.fusion_layers or [])
                    )
                    self.ui.modelCardLabel.text = " ".join(
                        t for t in (self.logic.describeCard(self._card), kinds_note([checkpoint_kind(self._card)])) if t
                    )
            remembered = checkpoint_to_remember(path, self._card is not None)
            if remembered is not None:
                qt.QSettings().setValue(SETTINGS_CHECKPOINT, remembered)
        names = list(self._card.class_names) if self._card is not None else []
        self.ui.targetClassComboBox.setCurrentIndex(
            max(self.ui.targetClassComboBox.findText(target_class(names, p.targetClass)), 0)
        )

    def _showThresholdSpec(self, p) -> None:
        """The value slider's range, decimals and step for the mode (range first: the slider rejects
        a step larger than its range)."""
        spec = threshold_spec(p.thresholdMode)
        slider = self.ui.thresholdValueSlider
        slider.setRange(spec.minimum, spec.maximum)
        slider.decimals = spec.decimals
        slider.singleStep = spec.step
        slider.enabled = spec.enabled
        slider.value = threshold_value(p.thresholdMode, p.thresholdValue)

    def _showManualFields(self, p) -> None:
        chosen = {m for m in p.methods.split(",") if m}
        for row in range(self.ui.methodsList.count):
            item = self.ui.methodsList.item(row)
            item.setCheckState(qt.Qt.Checked if item.text() in chosen else qt.Qt.Unchecked)
        self.ui.deviceComboBox.setCurrentIndex(max(self.ui.deviceComboBox.findText(p.device), 0))
        for selector, node, segmentID in (
            (self.ui.referenceSegmentSelector, p.referenceSegmentation, p.referenceSegmentID),
            (self.ui.regionSegmentSelector, p.regionSegmentation, p.regionSegmentID),
        ):
            selector.setCurrentNode(node)
            if node is not None:
                selector.setCurrentSegmentID(segment_to_select(segmentID, self.logic.segmentIDs(node)))

    def _checkpointKinds(self) -> list:
        """'classifier' or 'segmentation' for the main checkpoint (once its card is read) and each readable
        ensemble checkpoint (WSSSCamLib.panel.checkpoint_kind)."""
        main = [checkpoint_kind(self._card)] if self._card is not None else []
        return main + [checkpoint_kind(card) for card in self.logic.readableCards(self.ensembleCheckpoints())]

    def _showControls(self, p) -> None:
        """Enable the methods and CAM settings that apply to the chosen checkpoints (display only; the
        methods list's signals are blocked by the caller)."""
        controls = panel_controls(CAM_METHOD_NAMES, [m for m in p.methods.split(",") if m], self._checkpointKinds())
        for row in range(self.ui.methodsList.count):
            item = self.ui.methodsList.item(row)
            item.setFlags(self._methodFlags if controls.methods.get(item.text(), True) else qt.Qt.ItemIsUserCheckable)
        for widget in (
            self.ui.targetClassComboBox,
            self.ui.targetLayersLineEdit,
            self.ui.thresholdModeComboBox,
            self.ui.ensembleRuleComboBox,
            self.ui.suppressNegativesCheckBox,
        ):
            widget.enabled = controls.cam_settings
        self.ui.thresholdValueSlider.enabled = controls.cam_settings and threshold_spec(p.thresholdMode).enabled

    def _corrections(self) -> dict:
        """Parameter-node fields whose stored value the rules replace: name -> value."""
        p = self._parameterNode
        fixes = {}
        value = threshold_value(p.thresholdMode, p.thresholdValue)
        if value != p.thresholdValue:
            fixes["thresholdValue"] = value
        for field, node in (("referenceSegmentID", p.referenceSegmentation), ("regionSegmentID", p.regionSegmentation)):
            if node is not None:
                wanted = segment_to_select(getattr(p, field), self.logic.segmentIDs(node))
                if wanted != getattr(p, field):
                    fixes[field] = wanted
        return fixes

    def _applyCorrections(self) -> None:
        """Write the rules' corrections (from a zero-delay timer: never inside a wrapper update)."""
        if self._parameterNode is None:
            return
        fixes = self._corrections()
        with slicer.util.NodeModify(self._parameterNode):
            for field, value in fixes.items():
                setattr(self._parameterNode, field, value)

    def _checkCanApply(self, caller=None, event=None) -> None:
        p = self._parameterNode
        running = self._run is not None
        blocker = (
            _("no parameter node")
            if p is None
            else apply_blocker(
                ApplyState(
                    has_input_volume=bool(p.inputVolume),
                    checkpoint=checkpoint_or_none(p.checkpointPath),
                    card_error=self._cardError,
                    methods=self.checkedMethods(),
                    threshold_mode=p.thresholdMode,
                    threshold_value=p.thresholdValue,
                    ensemble_rule=p.ensembleRule,
                    running=running,
                    checkpoint_kinds=self._checkpointKinds(),
                    has_region=bool(p.regionSegmentation and p.regionSegmentID) or bool(p.regionROI),
                )
            )
        )
        self.ui.applyButton.enabled = not blocker
        self.ui.cancelButton.enabled = running
        self.ui.applyButton.toolTip = _("Compute the CAMs and segmentations") if not blocker else blocker

    # --- manual fields: the user changed an unbound widget ---

    def checkedMethods(self) -> list:
        return [
            self.ui.methodsList.item(r).text()
            for r in range(self.ui.methodsList.count)
            if self.ui.methodsList.item(r).checkState() == qt.Qt.Checked
        ]

    def ensembleCheckpoints(self) -> list:
        return [self.ui.ensembleModelsList.item(r).text() for r in range(self.ui.ensembleModelsList.count)]

    def onMethodsChanged(self, item=None) -> None:
        if self._syncing or not self._parameterNode:
            return
        self._parameterNode.methods = ",".join(self.checkedMethods())

    def onTargetClassChanged(self, index=None) -> None:
        if self._syncing or not self._parameterNode:
            return
        self._parameterNode.targetClass = self.ui.targetClassComboBox.currentText

    def onDeviceChanged(self, index=None) -> None:
        if self._syncing or not self._parameterNode:
            return
        self._parameterNode.device = self.ui.deviceComboBox.currentText

    def onReferenceChanged(self, *args) -> None:
        if self._syncing or not self._parameterNode:
            return
        with slicer.util.NodeModify(self._parameterNode):
            self._parameterNode.referenceSegmentation = self.ui.referenceSegmentSelector.currentNode()
            self._parameterNode.referenceSegmentID = self.ui.referenceSegmentSelector.currentSegmentID() or ""

    def onRegionChanged(self, *args) -> None:
        if self._syncing or not self._parameterNode:
            return
        with slicer.util.NodeModify(self._parameterNode):
            self._parameterNode.regionSegmentation = self.ui.regionSegmentSelector.currentNode()
            self._parameterNode.regionSegmentID = self.ui.regionSegmentSelector.currentSegmentID() or ""

    def onAddModel(self) -> None:
        paths = qt.QFileDialog.getOpenFileNames(
            slicer.util.mainWindow(), _("Ensemble checkpoints"), "", "PyTorch checkpoint (*.pt *.pth)"
        )
        for path in paths:
            self.ui.ensembleModelsList.addItem(path)
        qt.QSettings().setValue(SETTINGS_ENSEMBLE, os.pathsep.join(self.ensembleCheckpoints()))
        self.onParameterNodeModified()  # the methods and settings that apply depend on every checkpoint

    def onRemoveModel(self) -> None:
        for item in self.ui.ensembleModelsList.selectedItems():
            self.ui.ensembleModelsList.takeItem(self.ui.ensembleModelsList.row(item))
        qt.QSettings().setValue(SETTINGS_ENSEMBLE, os.pathsep.join(self.ensembleCheckpoints()))
        self.onParameterNodeModified()

    def onExportDirectoryChanged(self, directory) -> None:
        if checkpoint_or_none(directory) is not None:
            qt.QSettings().setValue(SETTINGS_EXPORT, directory)

    # --- display (never writes the parameter node) ---

    def onOpacityChanged(self, value) -> None:
        self.logic.setForegroundOpacity(value)

    def onDisplayLevelChanged(self, value) -> None:
        if self._results is not None:
            self.logic.setDisplayLevel(self._results, value)

    def onShownCamChanged(self, node) -> None:
        if node is not None and self._parameterNode and node.GetAttribute("WSSSCam.method"):
            self.logic.showCam(node, self._parameterNode.inputVolume, self._parameterNode.opacity)

    # --- the run: a child process polled by a timer (WSSSCamLogic.run returns a PanelRun) ---

    def onApplyButton(self) -> None:
        if not self.logic.ensureDependencies():
            return
        self.startRun(self._parameterNode.device)

    def startRun(self, device: str) -> None:
        p = self._parameterNode
        extra = [n for n in self.ui.extraChannelsSelector.checkedNodes() if n is not p.inputVolume]
        checkpoints = [str(p.checkpointPath)] + self.ensembleCheckpoints()
        with slicer.util.tryWithErrorDisplay(_("Cannot start the CAM computation."), waitCursor=True):
            volumes = [p.inputVolume] + extra
            order = channel_order([v.GetName() for v in volumes], list(self._card.channel_names))
            kinds = self._checkpointKinds()
            self._run = self.logic.run(
                inputVolumes=volumes,
                checkpoints=checkpoints,
                methods=methods_to_run(self.checkedMethods(), kinds),
                targetClassName=target_class_argument(
                    target_class(list(self._card.class_names), p.targetClass), kinds, self.checkedMethods()
                )
                or "",
                layers=p.targetLayers,
                device=device,
                batchSize=p.batchSize,
                regionSegmentation=p.regionSegmentation,
                regionSegmentID=p.regionSegmentID,
                regionROI=p.regionROI,
                thresholdMode=p.thresholdMode,
                thresholdValue=threshold_value(p.thresholdMode, p.thresholdValue),
                ensembleRule=p.ensembleRule,
                suppressNegatives=p.suppressNegatives,
                referenceSegmentation=p.referenceSegmentation,
                referenceSegmentID=p.referenceSegmentID,
                opacity=p.opacity,
                displayLevel=p.displayLevel,
                channelOrder=order,
            )
            self._runDevice = device
            self.ui.progressBar.setVisible(True)
            self.ui.progressBar.setValue(0)
            self.ui.statusLabel.text = _("Starting the computation in a background process...")
            self.timer.start()
        self._checkCanApply()

    def onRunStep(self) -> None:
        """Timer tick (every 200 ms): read the child's progress without blocking; load the results
        into the scene only when the run succeeded."""
        run = self._run
        if run is None:
            self.timer.stop()
            return
        for event in run.poll():
            if event.get("event") == "batch":
                self.ui.statusLabel.text = _("{case} {model}: {done} of {total} slices").format(
                    case=event.get("case", ""),
                    model=event.get("model", ""),
                    done=event.get("done", 0),
                    total=event.get("total", 0),
                )
        self.ui.progressBar.setMaximum(1000)
        self.ui.progressBar.setValue(int(1000 * run.fraction))
        if run.state == "running" or (run.state == "succeeded" and not run.ready):
            return  # still computing, or its files are being read on a worker thread
        self.stopRun(cancel=False)
        try:
            self._finishRun(run)
        finally:
            run.cleanup()  # the run's working folder (inputs and outputs) is not kept

    def _finishRun(self, run) -> None:
        """Load a successful run into the scene, or say why it failed (offering the CPU after a GPU out-of-memory)."""
        if run.state == "succeeded":
            with slicer.util.tryWithErrorDisplay(_("Loading the results failed."), waitCursor=True):
                self._results = run.load()
                self.showResults(self._results)
            return
        error = run.error
        if self.logic.isOutOfMemory(error) and self._runDevice != "cpu":
            if slicer.util.confirmYesNoDisplay(
                _("The GPU ran out of memory ({error}).\n\nRun on the CPU instead (slower)?").format(error=error),
                windowTitle=_("WSSSCam: GPU out of memory"),
            ):
                self._parameterNode.device = "cpu"
                self.startRun("cpu")
            return
        logging.error("WSSSCam run failed: %s", error)
        slicer.util.errorDisplay(_("CAM computation failed: {error}").format(error=error), detailedText=error)

    def onCancelButton(self) -> None:
        self.stopRun()
        self.ui.statusLabel.text = _("Cancelled; nothing was added to the scene.")

    def stopRun(self, cancel: bool = True) -> None:
        """Stop polling; with ``cancel`` also end the child process (within a second)."""
        self.timer.stop()
        if self._run is not None:
            if cancel:
                self._run.cancel()
                self._run.cleanup()
            self._run = None
        self.ui.progressBar.setVisible(False)
        if self._parameterNode is not None:
            self._checkCanApply()

    def showResults(self, results) -> None:
        self.ui.statusLabel.text = _(
            "Done: {count} CAM volume(s), {networks} segmentation probability volume(s) ({names}), {segments} segment(s)."
        ).format(
            count=len(results.cam_nodes),
            networks=len(results.probability_nodes),
            names=", ".join(results.map_nodes),
            segments=len(results.masks),
        )
        self.ui.shownCamSelector.setCurrentNode(next(iter(results.map_nodes.values())))
        for table in (results.metrics_table, results.agreement_table):
            if table is not None:
                self.logic.showTable(table)
                break

    # --- export ---

    def onExport(self, kind: str) -> None:
        if self._results is None:
            slicer.util.errorDisplay(_("Run the CAMs first (Apply)."))
            return
        if kind == "dicom" and not self.logic.ensureDependencies(DICOM_REQUIREMENTS_FILE):
            return
        directory = self.ui.exportDirectoryButton.directory
        with slicer.util.tryWithErrorDisplay(_("Export failed."), waitCursor=True):
            written = self.logic.export(
                kind, self._results, self._parameterNode.inputVolume, directory, self.ui.shownCamSelector.currentNode()
            )
            self.ui.statusLabel.text = _("Written: {files}").format(files=", ".join(str(p) for p in written))


#
# WSSSCamLogic
#


class WSSSCamLogic(ScriptedLoadableModuleLogic):
    """Thin wrapper around WSSSCamLib (its MRML bridge WSSSCamLib.mrml does the work); usable from
    the Python console and scripts without the panel."""

    def __init__(self) -> None:
        ScriptedLoadableModuleLogic.__init__(self)

    def getParameterNode(self):
        return WSSSCamParameterNode(super().getParameterNode())

    def libraryVersion(self) -> str:
        """Version of the WSSSCamLib package bundled with the extension."""
        import WSSSCamLib

        return WSSSCamLib.__version__

    # --- dependencies ---

    @staticmethod
    def requirements(fileName: str = REQUIREMENTS_FILE) -> list:
        """The pinned requirements in Resources/<fileName> (equal to pyproject.toml's)."""
        from WSSSCamLib.dependencies import read_requirements

        return read_requirements((Path(__file__).parent / "Resources" / fileName).read_text())

    def ensureDependencies(self, fileName: str = REQUIREMENTS_FILE, ask: bool = True) -> bool:
        """Install what is missing of Resources/<fileName> after one confirmation: torch/torchvision
        through the PyTorch extension (with the pinned ranges), the rest with
        slicer.packaging.pip_ensure (Slicer >= 5.12; it also enforces the version ranges and offers a
        restart when an imported package was updated) or slicer.util.pip_install (older Slicer, then we
        offer the restart). Failures are caught and shown; returns whether everything is installed."""
        import sys

        from WSSSCamLib.dependencies import installed_version, missing_requirements, requirement_name, split_pytorch

        requirements = self.requirements(fileName)
        missing = missing_requirements(requirements, installed_version)
        pytorch, others = split_pytorch(requirements)
        try:
            from slicer import packaging
        except ImportError:
            packaging = None
        if not missing and (packaging is None or not hasattr(packaging, "pip_ensure")):
            return True
        if (
            missing
            and ask
            and not slicer.util.confirmOkCancelDisplay(
                _(
                    "WSSSCam needs these Python packages, which are not installed yet:\n{packages}\n\nInstall them now? "
                    "PyTorch comes through the PyTorch extension and may download 1-3 GB."
                ).format(packages="\n".join(missing)),
                windowTitle=_("WSSSCam - Install Python packages"),
            )
        ):
            return False
        try:
            if any(requirement_name(r) in pytorch for r in missing):
                try:
                    import PyTorchUtils
                except ImportError:
                    slicer.util.errorDisplay(
                        _(
                            "Install the 'PyTorch' extension from the Extensions Manager, restart Slicer, "
                            "then press Apply again."
                        )
                    )
                    return False
                if (
                    PyTorchUtils.PyTorchUtilsLogic().installTorch(
                        askConfirmation=False,
                        torchVersionRequirement=pytorch.get("torch"),
                        torchvisionVersionRequirement=pytorch.get("torchvision"),
                    )
                    is None
                ):
                    return False
            if packaging is not None and hasattr(packaging, "pip_ensure"):
                # we asked already when something was missing; otherwise pip_ensure asks if a version range is unmet
                packaging.pip_ensure(
                    others, prompt_install=not (missing and ask), prompt_restart=True, requester="WSSSCam"
                )
                return True
            pipMissing = [r for r in missing if requirement_name(r) not in pytorch]
            if pipMissing:
                imported = [r for r in pipMissing if requirement_name(r) in sys.modules]
                slicer.util.pip_install(pipMissing)
                if imported and slicer.util.confirmYesNoDisplay(
                    _("Some updated packages were already loaded. Restart Slicer now?"), windowTitle=_("WSSSCam")
                ):
                    slicer.util.restart()
        except Exception as error:
            logging.exception("WSSSCam: installing Python packages failed")
            slicer.util.errorDisplay(
                _("Installing the Python packages failed: {error}").format(error=error), detailedText=str(error)
            )
            return False
        return True

    @staticmethod
    def segmentIDs(segmentationNode) -> list:
        """IDs of the segments of a segmentation node, in order."""
        segmentation = segmentationNode.GetSegmentation()
        return [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]

    @staticmethod
    def availableDevices() -> list:
        """'auto', 'cpu' and each CUDA device (when PyTorch is installed)."""
        devices = ["auto", "cpu"]
        try:
            import torch

            devices += [f"cuda:{i}" for i in range(torch.cuda.device_count())]
        except ImportError:
            pass
        return devices

    @staticmethod
    def isOutOfMemory(error) -> bool:
        try:
            import torch

            if isinstance(error, torch.cuda.OutOfMemoryError):
                return True
        except (ImportError, AttributeError):
            pass
        return "out of memory" in str(error).lower()

    # --- model ---

    @staticmethod
    def readCard(checkpointPath):
        from WSSSCamLib.training.checkpoint import card_path, read_card

        return read_card(card_path(checkpointPath))

    def readableCards(self, checkpointPaths) -> list:
        """The model cards of those checkpoints whose card can be read (the others are reported by the run)."""
        cards = []
        for path in checkpointPaths:
            try:
                cards.append(self.readCard(path))
            except Exception:  # noqa: BLE001 - an unreadable card fails the run with its own message
                continue
        return cards

    @staticmethod
    def describeCard(card) -> str:
        auc = (card.validation or {}).get("auc")
        text = _("{architecture}, {spatial}D, channels {channels}, classes {classes}").format(
            architecture=card.architecture,
            spatial=card.spatial_dims,
            channels=", ".join(card.channel_names),
            classes=", ".join(card.class_names),
        )
        return text + (_(", validation AUC {auc:.3f}").format(auc=auc) if isinstance(auc, (int, float)) else "")

    # --- the run: wssscam predict in a child process (WSSSCamLib.mrml.background_run.PanelRun) ---

    @staticmethod
    def namedCheckpoints(checkpoints) -> list:
        """``NAME=PATH`` for each checkpoint, named by its file stem (made unique): the model names in
        the result nodes ("cnn0 grad-cam")."""
        from WSSSCamLib.predict.run import safe_file_name

        named, taken = [], set()
        for path in checkpoints:
            name = safe_file_name(Path(path).stem)
            name = name if name[0].isalnum() else f"model{name}"
            while name in taken:
                name += "-2"
            taken.add(name)
            named.append(f"{name}={path}")
        return named

    @staticmethod
    def pythonExecutable() -> str:
        """Slicer's Python launcher for the child process (as the Slicer AI extensions use it)."""
        import shutil
        import sys

        return shutil.which("PythonSlicer") or sys.executable

    def run(
        self,
        inputVolumes,
        checkpoints,
        methods,
        targetClassName="",
        layers="",
        device="auto",
        batchSize=16,
        regionSegmentation=None,
        regionSegmentID="",
        regionROI=None,
        thresholdMode="fixed",
        thresholdValue=0.5,
        ensembleRule="none",
        suppressNegatives=False,
        referenceSegmentation=None,
        referenceSegmentID="",
        opacity=0.5,
        displayLevel=0.2,
        scene=None,
        channelOrder=None,
    ):
        """Start a run and return its ``WSSSCamLib.mrml.background_run.PanelRun``: the inputs are written
        to a fresh temporary folder and ``wssscam predict`` computes in a child process. Poll it
        (``run.poll()``, never blocks), cancel it (``run.cancel()``), and when ``run.state`` is
        "succeeded" put its files into the scene with ``run.load()``. Until then nothing is added to
        the scene, so Cancel or a failure leaves the scene unchanged.

        ``inputVolumes``: the input volume (its grid is the output grid) and the extra channels;
        ``channelOrder``: indices into them in the model card's channel order (WSSSCamLib.panel.channel_order)."""
        import tempfile

        from WSSSCamLib.masks import Threshold
        from WSSSCamLib.mrml import roi_to_mask, segment_to_mask
        from WSSSCamLib.mrml.background_run import PanelRun
        from WSSSCamLib.panel import threshold_argument

        scene = scene or slicer.mrmlScene
        volumeNode = inputVolumes[0]
        region = None
        if regionSegmentation is not None and regionSegmentID:
            region = segment_to_mask(scene, regionSegmentation, regionSegmentID, volumeNode)
        elif regionROI is not None:
            region = roi_to_mask(regionROI, volumeNode)
        reference = (
            (referenceSegmentation, referenceSegmentID)
            if referenceSegmentation is not None and referenceSegmentID
            else None
        )
        temporary = getattr(getattr(slicer, "app", None), "temporaryPath", None)
        folder = tempfile.mkdtemp(prefix="WSSSCam-run-", dir=temporary)
        layerList = [name.strip() for name in layers.split(",") if name.strip()] or None
        run = PanelRun(
            scene,
            inputVolumes,
            self.namedCheckpoints(checkpoints),
            folder,
            methods,
            Threshold(thresholdMode, threshold_argument(thresholdMode, thresholdValue)),
            ensemble=None if ensembleRule == "none" else ensembleRule,
            empty_when_negative=suppressNegatives,
            target_class=targetClassName or None,
            layers=layerList,
            device=device,
            batch_size=batchSize,
            reference=reference,
            region=region,
            python=self.pythonExecutable(),
            opacity=opacity,
            display_level=displayLevel,
            channel_order=channelOrder if len(inputVolumes) > 1 else None,
        )
        return run.start()

    def process(self, **kwargs):
        """Run to the end without a GUI (scripts, tests); returns the PublishedResults."""
        run = self.run(**kwargs)
        try:
            if run.process.wait() != "succeeded":
                raise RuntimeError(run.error)
            return run.load()
        finally:
            run.cleanup()

    # --- display and export ---

    @staticmethod
    def setForegroundOpacity(opacity: float) -> None:
        from WSSSCamLib.mrml.display import set_foreground_opacity

        set_foreground_opacity(slicer.mrmlScene, opacity)

    @staticmethod
    def setDisplayLevel(results, level: float) -> None:
        for node in results.map_nodes.values():
            display = node.GetDisplayNode()
            if display is not None:
                display.SetLowerThreshold(level)

    @staticmethod
    def showCam(camNode, backgroundNode, opacity: float) -> None:
        from WSSSCamLib.mrml import show_as_foreground

        show_as_foreground(slicer.mrmlScene, camNode, opacity, backgroundNode)

    @staticmethod
    def showTable(tableNode) -> None:
        """Show the table in a table view, switching to the four-up layout with a table when the
        current layout has none (the default layouts have none)."""
        layoutManager = slicer.app.layoutManager()
        withTable = (
            slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView,
            slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpPlotTableView,
            slicer.vtkMRMLLayoutNode.SlicerLayout3DTableView,
        )
        if layoutManager is not None and layoutManager.layout not in withTable:
            layoutManager.setLayout(slicer.vtkMRMLLayoutNode.SlicerLayoutFourUpTableView)
        slicer.app.applicationLogic().GetSelectionNode().SetActiveTableID(tableNode.GetID())
        slicer.app.applicationLogic().PropagateTableSelection()

    @staticmethod
    def dicomFiles(volumeNode) -> list:
        uids = (volumeNode.GetAttribute("DICOM.instanceUIDs") or "").split()
        database = getattr(slicer, "dicomDatabase", None)
        if not uids or database is None:
            return []
        return [f for f in (database.fileForInstance(uid) for uid in uids) if f]

    def export(self, kind: str, results, volumeNode, directory, camNode=None) -> list:
        """Write the results: 'seg.nrrd', 'nifti' (label map + label names), 'dicom' (DICOM SEG), or 'cam'
        (the shown CAM volume as NRRD and NIfTI). Returns the files written."""
        from WSSSCamLib.mrml import (
            export_dicom_seg,
            export_segmentation_labelmap,
            export_segmentation_seg_nrrd,
            export_volume,
        )

        directory = Path(directory)
        segmentation = results.segmentation_node
        base = slicer.app.ioManager().forceFileNameValidCharacters(volumeNode.GetName())
        if kind == "seg.nrrd":
            return [export_segmentation_seg_nrrd(segmentation, directory / f"{base} WSSSCam.seg.nrrd")]
        if kind == "nifti":
            path = directory / f"{base} WSSSCam labels.nii.gz"
            export_segmentation_labelmap(slicer.mrmlScene, segmentation, path, volumeNode)
            return [path, directory / f"{base} WSSSCam labels.labels.json"]
        if kind == "dicom":
            return [
                export_dicom_seg(
                    slicer.mrmlScene,
                    segmentation,
                    volumeNode,
                    directory / f"{base} WSSSCam SEG.dcm",
                    self.dicomFiles(volumeNode),
                )
            ]
        if kind == "cam":
            camNode = camNode or next(iter(results.map_nodes.values()))
            return [
                export_volume(camNode, directory / f"{camNode.GetName()}{suffix}") for suffix in (".nrrd", ".nii.gz")
            ]
        raise ValueError(f"unknown export kind {kind!r}")


#
# WSSSCamTest
#


class WSSSCamTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (Reload & Test, or the extension's generic tests): the logic end to end on
    a generated phantom volume with an untrained small CNN saved as a checkpoint with its card."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_logic_end_to_end_on_generated_data()
        self.setUp()
        self.test_segmentation_checkpoint_beside_the_cams()

    def _phantom(self):
        """A generated 6 x 32 x 32 volume with a lesion, put in the scene: (batch, its IJK-to-RAS affine, the
        volume node, a temporary folder); None (with a warning) where PyTorch is not installed."""
        try:
            import torch  # noqa: F401
        except ImportError:
            logging.warning("PyTorch is not installed (install the PyTorch extension); WSSSCam test skipped")
            return None
        import numpy as np

        from WSSSCamLib.data.synthetic import synthetic_batch
        from WSSSCamLib.data.volume import affine_from_geometry
        from WSSSCamLib.mrml import array_to_volume_node

        batch = synthetic_batch(1, shape=(6, 32, 32), positive_fraction=1.0, seed=5)
        affine = affine_from_geometry([0.9, 0.9, 3.0], [-14.0, -14.0, 0.0], np.eye(3))
        volumeNode = array_to_volume_node(slicer.mrmlScene, batch.images[0, 0], affine, "Phantom FLAIR")
        return batch, affine, volumeNode, Path(slicer.util.tempDirectory("WSSSCamTest"))

    def test_logic_end_to_end_on_generated_data(self):
        self.delayDisplay("WSSSCam: CAMs, segments, tables and exports on a generated volume")
        phantom = self._phantom()
        if phantom is None:
            return
        batch, affine, volumeNode, folder = phantom
        import numpy as np
        import torch

        from WSSSCamLib.models.zoo import build_model
        from WSSSCamLib.mrml import masks_to_segmentation, node_to_volume, segment_to_mask
        from WSSSCamLib.training.checkpoint import ModelCard, save_checkpoint

        reference = masks_to_segmentation(
            slicer.mrmlScene, {"lesion": batch.masks[0].numpy()}, volumeNode, name="Reference"
        )
        checkpoints = []
        for seed in (0, 1):
            torch.manual_seed(seed)
            card = ModelCard(
                architecture="small-cnn",
                in_channels=1,
                num_classes=2,
                class_names=["normal", "lesion"],
                channel_names=["FLAIR"],
                input_size=[32, 32],
                recipe={"size": 32, "axis": "K"},
            )
            checkpoints.append(str(save_checkpoint(build_model("small-cnn", 1, 2), card, folder / f"cnn{seed}.pt")))

        logic = WSSSCamLogic()
        arguments = dict(
            inputVolumes=[volumeNode],
            checkpoints=checkpoints,
            methods=["grad-cam", "layer-cam"],
            targetClassName="lesion",
            device="cpu",
            batchSize=4,
            thresholdMode="fixed",
            thresholdValue=0.4,
            ensembleRule="and",
            referenceSegmentation=reference,
            referenceSegmentID=reference.GetSegmentation().GetNthSegmentID(0),
        )
        run = logic.run(**arguments)
        self.assertEqual(run.process.wait(timeout=600), "succeeded", run.error)
        self.assertEqual([e["done"] for e in run.process.events if e["event"] == "batch"], [4, 6, 4, 6])
        self.assertEqual(run.process.events[-1]["fraction"], 1.0)
        run.cleanup()
        results = logic.process(**arguments, opacity=0.6)
        self.assertEqual(results.segmentation_node.GetName(), "WSSSCam Phantom FLAIR results")
        self.assertEqual(len(results.cam_nodes), 4)
        camNode = results.cam_nodes["cnn0 grad-cam"]
        np.testing.assert_allclose(node_to_volume(camNode).ijk_to_ras, affine, atol=1e-9)
        self.assertEqual(
            camNode.GetDisplayNode().GetColorNode().GetName(), "WSSSCam Phantom FLAIR cnn0 grad-cam CAM heat"
        )
        red = slicer.app.layoutManager().sliceWidget("Red").mrmlSliceCompositeNode()
        self.assertEqual(red.GetForegroundVolumeID(), camNode.GetID())
        self.assertAlmostEqual(red.GetForegroundOpacity(), 0.6)
        self.assertEqual(results.segmentation_node.GetSegmentation().GetNumberOfSegments(), 5)
        mask = segment_to_mask(slicer.mrmlScene, results.segmentation_node, "and ensemble t=0.40", volumeNode)
        np.testing.assert_array_equal(mask, results.masks["and ensemble t=0.40"].numpy())
        self.assertEqual(results.metrics_table.GetTable().GetNumberOfRows(), 5)
        self.assertEqual(results.agreement_table.GetTable().GetNumberOfRows(), 4)
        written = logic.export("seg.nrrd", results, volumeNode, folder) + logic.export(
            "cam", results, volumeNode, folder, camNode
        )
        self.assertTrue(all(Path(p).is_file() for p in written))
        loaded = slicer.util.loadSegmentation(str(written[0]))
        self.assertEqual(loaded.GetSegmentation().GetNumberOfSegments(), 5)
        self.delayDisplay("Test passed")

    def test_segmentation_checkpoint_beside_the_cams(self):
        self.delayDisplay("WSSSCam: a segmentation checkpoint's own segment beside a classifier's CAM segments")
        phantom = self._phantom()
        if phantom is None:
            return
        _, affine, volumeNode, folder = phantom
        import numpy as np
        import torch

        from WSSSCamLib.models.zoo import build_model
        from WSSSCamLib.mrml import node_to_volume, segment_to_mask
        from WSSSCamLib.training.checkpoint import ModelCard, save_checkpoint

        torch.manual_seed(0)
        recipe = {"size": 32, "axis": "K"}
        classifier = ModelCard("small-cnn", 1, 2, ["normal", "lesion"], ["FLAIR"], input_size=[32, 32], recipe=recipe)
        unetCard = ModelCard(
            "monai-unet", 1, 2, ["background", "abnormal"], ["FLAIR"], input_size=[32, 32], recipe=recipe
        )
        checkpoints = [
            str(save_checkpoint(build_model("small-cnn", 1, 2), classifier, folder / "cnn.pt")),
            str(save_checkpoint(build_model("monai-unet", 1, 2), unetCard, folder / "unet.pt")),
        ]
        logic = WSSSCamLogic()
        arguments = dict(
            inputVolumes=[volumeNode], checkpoints=checkpoints, methods=["grad-cam"], device="cpu", batchSize=4
        )
        for _rerun in range(2):  # a rerun refills the same nodes
            results = logic.process(**arguments)
        self.assertEqual(list(results.cam_nodes), ["grad-cam"])  # one model with CAMs: no model name
        self.assertEqual(list(results.probability_nodes), ["unet segmentation"])
        probabilityNode = results.probability_nodes["unet segmentation"]
        self.assertEqual(probabilityNode.GetName(), "WSSSCam Phantom FLAIR unet segmentation probability")
        np.testing.assert_allclose(node_to_volume(probabilityNode).ijk_to_ras, affine, atol=1e-9)
        self.assertEqual(slicer.mrmlScene.GetNodesByName(probabilityNode.GetName()).GetNumberOfItems(), 1)
        segmentation = results.segmentation_node.GetSegmentation()
        names = [segmentation.GetNthSegment(i).GetName() for i in range(segmentation.GetNumberOfSegments())]
        self.assertEqual(names, ["grad-cam t=0.50", "unet segmentation"])
        mask = segment_to_mask(slicer.mrmlScene, results.segmentation_node, "unet segmentation", volumeNode)
        np.testing.assert_array_equal(mask, results.masks["unet segmentation"].numpy())
        self.delayDisplay("Test passed")
