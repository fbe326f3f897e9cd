"""Figures: heat-coloured CAM overlays and image grids written as PNG."""

from .overlays import heat_rgb, overlay_rgb, write_png

__all__ = ["heat_rgb", "overlay_rgb", "write_png"]
