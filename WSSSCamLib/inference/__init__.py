"""From volumes to CAMs on the volume's own grid (see :mod:`WSSSCamLib.inference.volume_cams`)."""

from .volume_cams import VolumeCams, cam_engine_for, iter_volume_cams, resize_maps, slice_cams, volume_cams

__all__ = ["VolumeCams", "cam_engine_for", "iter_volume_cams", "resize_maps", "slice_cams", "volume_cams"]
