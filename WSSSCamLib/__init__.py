"""WSSSCamLib: weakly supervised segmentation studies with class activation maps on medical volumes.

Runs without the 3D Slicer application (plain Python, or ``Slicer --python-script``). Data flows
one way: volume -> batches -> activations and gradients -> maps -> masks -> metric rows -> tables
and figures; each stage is a sub-package named after what it holds.
"""

__version__ = "0.1.0"
