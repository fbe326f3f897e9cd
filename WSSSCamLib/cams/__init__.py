"""CAM engine of WSSSCamLib: every CAM method, 2D and 3D, gradient methods from one shared pass."""

from .engine import CamEngine, CamResult
from .methods import GRADIENT_METHODS, METHODS, Method, resolve_methods
from .targets import Region

__all__ = ["CamEngine", "CamResult", "GRADIENT_METHODS", "METHODS", "Method", "Region", "resolve_methods"]
