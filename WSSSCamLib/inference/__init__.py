"""From volumes to CAMs on the volume's own grid (see :mod:`WSSSCamLib.inference.volume_cams`) and to a
segmentation network's own segmentation (:mod:`WSSSCamLib.inference.segmentation`), with
optional multi-scale / flip test-time augmentation (:mod:`WSSSCamLib.inference.augmentation`)."""

from .augmentation import TestTimeAugmentation, augmented_cams
from .segmentation import VolumeSegmentation, iter_volume_segmentation, volume_segmentation
from .volume_cams import VolumeCams, cam_engine_for, iter_volume_cams, resize_maps, slice_cams, volume_cams

__all__ = [
    "TestTimeAugmentation",
    "VolumeCams",
    "VolumeSegmentation",
    "augmented_cams",
    "cam_engine_for",
    "iter_volume_cams",
    "iter_volume_segmentation",
    "resize_maps",
    "slice_cams",
    "volume_cams",
    "volume_segmentation",
]
