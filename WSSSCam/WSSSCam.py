"""WSSSCam: class activation maps (CAMs) for weakly supervised segmentation, in 3D Slicer.

This is the scripted module of the WSSSCam extension. It stays thin: widgets and wiring. The
science (CAM methods, thresholds, metrics, studies) lives in the WSSSCamLib package, which also
runs without Slicer.

The full panel (volume/model inputs, heatmap overlays, segments, metric tables, export) is built
on top of this skeleton; see the extension's README.
"""

import logging

import slicer
import qt
from slicer.i18n import tr as _
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)


class WSSSCam(ScriptedLoadableModule):
    """Module description shown in Slicer's module list and help panel."""

    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("WSSSCam")
        self.parent.categories = [_("Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["WSSSCam developers"]
        self.parent.helpText = _(
            "Class activation maps (Grad-CAM, Grad-CAM++, HiResCAM, XGrad-CAM, Layer-CAM, Score-CAM, "
            "Eigen-CAM, Seg-Grad-CAM, ...) of PyTorch networks on loaded volumes, for weakly supervised "
            "segmentation studies. Headless studies: run the WSSSCamLib study script with "
            "<code>Slicer --no-main-window --python-script</code>. See the "
            '<a href="https://github.com/wssscam/SlicerWSSSCam#readme">README</a>.'
        )
        self.parent.acknowledgementText = _(
            "Methods follow the papers cited in the README. LGG MRI test data: TCGA lower-grade glioma "
            "collection (The Cancer Imaging Archive), masks by Buda et al., Computers in Biology and Medicine, 2019."
        )


class WSSSCamWidget(ScriptedLoadableModuleWidget):
    """Panel of the module."""

    def setup(self):
        ScriptedLoadableModuleWidget.setup(self)
        self.logic = WSSSCamLogic()
        label = qt.QLabel(_("WSSSCam library version: {version}").format(version=self.logic.libraryVersion()))
        label.wordWrap = True
        self.layout.addWidget(label)
        self.layout.addStretch(1)


class WSSSCamLogic(ScriptedLoadableModuleLogic):
    """Thin wrapper around WSSSCamLib; holds no science of its own."""

    def libraryVersion(self):
        """Version of the WSSSCamLib package bundled with the extension."""
        import WSSSCamLib

        return WSSSCamLib.__version__


class WSSSCamTest(ScriptedLoadableModuleTest):
    """Runs inside Slicer: Slicer's Reload & Test, or the generic tests of the extension build."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        self.setUp()
        self.test_library_cam_on_tiny_network()

    def test_library_cam_on_tiny_network(self):
        """Grad-CAM of a tiny network through WSSSCamLib: finite maps in [0, 1] on the input grid."""
        self.delayDisplay("Computing a Grad-CAM on a tiny network")
        try:
            import torch
        except ImportError:
            logging.warning("PyTorch is not installed (install the PyTorch extension); test skipped")
            return
        from WSSSCamLib.cams import CamEngine

        model = torch.nn.Sequential(
            torch.nn.Conv2d(1, 4, 3, padding=1), torch.nn.ReLU(),
            torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2),
        ).eval()
        result = CamEngine(model, target_layer="1")(torch.rand(2, 1, 16, 16), target=1, methods="grad-cam")
        heat = result["grad-cam"]
        self.assertEqual(tuple(heat.shape), (2, 16, 16))
        self.assertTrue(bool(torch.isfinite(heat).all()))
        self.assertLessEqual(float(heat.max()), 1.0)
        self.delayDisplay("Test passed")
