"""The bridge between WSSSCamLib's arrays and 3D Slicer's MRML nodes.

Every function takes the MRML scene (``slicer.vtkMRMLScene``) it works in as an argument and uses
only MRML classes, ``vtkSlicerSegmentationsModuleLogic``'s static methods and ``slicer.util``'s
array helpers, so it runs both inside the Slicer application and headless with the ``slicer-core``
package (real MRML, no GUI). Arrays follow the library's convention: KJI (slice, row, column)
order, geometry as a 4 x 4 IJK-to-RAS affine in millimetres.

Sub-modules: :mod:`.geometry` (resampling between voxel grids, no MRML), :mod:`.volumes`,
:mod:`.colour`, :mod:`.display`, :mod:`.segmentations`, :mod:`.tables`, :mod:`.measurements`,
:mod:`.export`, and :mod:`.results` (CAM run in batches, then everything the Slicer panel shows).
"""

from .colour import heat_colour_table, setup_cam_display
from .display import show_as_foreground, slice_composite_nodes
from .export import (
    ExportError,
    export_dicom_seg,
    export_segmentation_labelmap,
    export_segmentation_seg_nrrd,
    export_volume,
)
from .geometry import resample_to_grid
from .measurements import agreement_rows, measure_masks, measure_segments, pairwise_iou_rows
from .results import (
    CAM_SEGMENT_TERMINOLOGY,
    PublishedResults,
    iter_cam_run,
    publish_for_volume,
    publish_results,
    result_key,
)
from .segmentations import masks_to_segmentation, roi_to_mask, segment_id, segment_to_mask
from .tables import dataframe_from_table_node, table_node_from_rows
from .volumes import array_to_volume_node, node_to_volume, nodes_to_volume, volume_to_node

__all__ = [
    "CAM_SEGMENT_TERMINOLOGY",
    "ExportError",
    "PublishedResults",
    "agreement_rows",
    "array_to_volume_node",
    "dataframe_from_table_node",
    "export_dicom_seg",
    "export_segmentation_labelmap",
    "export_segmentation_seg_nrrd",
    "export_volume",
    "heat_colour_table",
    "iter_cam_run",
    "masks_to_segmentation",
    "measure_masks",
    "measure_segments",
    "node_to_volume",
    "nodes_to_volume",
    "pairwise_iou_rows",
    "publish_for_volume",
    "publish_results",
    "resample_to_grid",
    "result_key",
    "roi_to_mask",
    "segment_id",
    "segment_to_mask",
    "setup_cam_display",
    "show_as_foreground",
    "slice_composite_nodes",
    "table_node_from_rows",
    "volume_to_node",
]
