"""From volumes to CAMs on the volume's own grid (see :mod:`WSSSCamLib.inference.volume_cams`), with
optional multi-scale / flip test-time augmentation (:mod:`WSSSCamLib.inference.augmentation`)."""

from .augmentation import TestTimeAugmentation, augmented_cams
from .volume_cams import VolumeCams, cam_engine_for, iter_volume_cams, resize_maps, slice_cams, volume_cams

__all__ = [
    "TestTimeAugmentation",
    "VolumeCams",
    "augmented_cams",
    "cam_engine_for",
    "iter_volume_cams",
    "resize_maps",
    "slice_cams",
    "volume_cams",
]
