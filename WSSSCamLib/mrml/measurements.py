"""Measuring results: each result mask against a reference segment (Dice, IoU, volumes in cc), and
agreement (mean pairwise IoU) across CAM methods for a fixed model and across models for a fixed
method (Syed et al. 2023, eqs. 17 and 18, here per volume).

The array functions (:func:`measure_masks`, :func:`pairwise_iou_rows`, :func:`agreement_rows`) live in
:mod:`WSSSCamLib.metrics.volume_measures` (no MRML); :func:`measure_segments` reads the segments of
segmentation nodes on a volume's grid first and measures them with those.
Conventions: masks are boolean K x J x I on one grid; two empty masks have Dice = IoU = 1 (the
library's convention, :mod:`WSSSCamLib.metrics.overlap`); a voxel's volume is |det| of the
affine's 3 x 3 part in mm^3 (spacing product for an orthogonal grid), 1 cc = 1000 mm^3.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..metrics.volume_measures import agreement_rows, measure_masks, pairwise_iou_rows, voxel_volume_mm3

__all__ = ["agreement_rows", "measure_masks", "measure_segments", "pairwise_iou_rows", "voxel_volume_mm3"]


def measure_segments(
    scene, segmentation_node, segments: Sequence[str] | None, reference_node, reference_segment: str, volume_node
) -> list[dict]:
    """:func:`measure_masks` of segments (IDs or names; ``None`` = all) of ``segmentation_node``
    against ``reference_segment`` of ``reference_node``, all read on ``volume_node``'s grid."""
    from .segmentations import segment_to_mask, volume_node_affine

    segmentation = segmentation_node.GetSegmentation()
    if segments is None:
        segments = [segmentation.GetNthSegment(n).GetName() for n in range(segmentation.GetNumberOfSegments())]
    reference = segment_to_mask(scene, reference_node, reference_segment, volume_node)
    masks = {name: segment_to_mask(scene, segmentation_node, name, volume_node) for name in segments}
    return measure_masks(masks, reference, volume_node_affine(volume_node))
