"""From CAM volumes to what the Slicer panel shows: CAM volume nodes with heat tables (foreground of
the slice views), thresholded and ensembled masks as named segments, a metrics table against a
reference segment and an agreement table across methods and models.

:func:`iter_cam_run` computes the CAMs of several models in batches (yielding progress so a GUI can
stay responsive and cancel); :func:`publish_results` turns them into MRML nodes in the input
volume's geometry. The Slicer module's Logic only calls these two.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from ..data.segmentation_files import CAM_SEGMENT_TERMINOLOGY
from ..data.volume import Volume
from ..masks import Threshold
from ..metrics.volume_measures import agreement_rows, measure_masks
from ..predict.segments import SegmentationRule, Segments, member_key, network_segment_name, segment_volumes
from .colour import heat_colour_table, setup_cam_display
from .display import show_as_foreground
from .segmentations import masks_to_segmentation, segment_to_mask
from .tables import table_node_from_rows
from .volumes import array_to_volume_node, world_ijk_to_ras

METRIC_UNITS = {"volume_cc": "cc", "reference_cc": "cc", "voxels": "voxels", "reference_voxels": "voxels"}


@dataclass
class PublishedResults:
    """The nodes :func:`publish_results` made or refilled, and the masks behind the segments.
    ``cam_nodes``: CAM volumes by key ('grad-cam', 'resnet18 grad-cam'); ``probability_nodes``:
    segmentation networks' probability volumes by their segment's name ('unet segmentation')."""

    cam_nodes: dict[str, object] = field(default_factory=dict)
    probability_nodes: dict[str, object] = field(default_factory=dict)
    segmentation_node: object = None
    masks: dict[str, torch.Tensor] = field(default_factory=dict)
    metrics_table: object = None
    agreement_table: object = None
    metrics: list[dict] = field(default_factory=list)
    agreement: list[dict] = field(default_factory=list)

    @property
    def map_nodes(self) -> dict[str, object]:
        """Every volume shown like a CAM: the CAMs, then the segmentation networks' probabilities."""
        return {**self.cam_nodes, **self.probability_nodes}


def iter_cam_run(
    volume: Volume,
    models: Mapping[str, tuple],
    methods: Sequence[str],
    target_class: int | None = None,
    layers: Sequence[str] | None = None,
    region: np.ndarray | None = None,
    batch_size: int = 16,
    device: str = "auto",
) -> Iterator[tuple[str, int, int, dict | None]]:
    """CAMs of every model (name -> ``(model, card)``) on ``volume``: yields ``(model name, done,
    total, None)`` after each batch and finally ``("", total, total, {model name: VolumeCams})``.
    ``layers`` apply when there is one model (layer names differ between architectures)."""
    from ..inference import iter_volume_cams

    cams = {}
    done_before, grand_total = 0, 0
    for name, (model, card) in models.items():
        use_layers = layers if len(models) == 1 else None
        for done, total, result in iter_volume_cams(
            volume, model, card, methods, target_class, use_layers, region, batch_size, device
        ):
            grand_total = max(grand_total, done_before + total)
            if result is None:
                yield name, done_before + done, len(models) * total, None
            else:
                cams[name] = result
        done_before += total
    yield "", grand_total, grand_total, cams


def result_key(model: str, method: str, several_models: bool) -> str:
    """Display name of one model's method: 'grad-cam', or 'resnet18 grad-cam' with several models."""
    return member_key(model, method, several_models)


def publish_results(
    scene,
    volume_node,
    cams: Mapping[str, object],
    threshold: Threshold,
    ensemble: str | None = None,
    suppress_negative_slices: bool = False,
    reference: tuple | None = None,
    opacity: float = 0.5,
    display_level: float = 0.2,
    segmentation_node=None,
    prefix: str = "WSSSCam",
    segments: Segments | None = None,
    measured: tuple[list[dict], list[dict]] | None = None,
    probabilities: Mapping[str, torch.Tensor] | None = None,
) -> PublishedResults:
    """Put the CAMs (model name -> ``VolumeCams`` on ``volume_node``'s grid) into ``scene``.

    * each (model, method) map becomes a scalar volume node "<prefix> <key> CAM" (refilled when it
      exists) in the volume's geometry, with its own heat table, window/level 0..1 and voxels below
      ``display_level`` transparent; the first is shown as foreground (``opacity``) over the volume;
    * the segments are :func:`~WSSSCamLib.predict.segments.segment_volumes` of the CAMs - the rules
      of ``wssscam predict`` and of the study: each map thresholded slice by slice (and, with
      ``suppress_negative_slices``, emptied on slices the classifier calls negative) becomes a
      segment "<key> <threshold>"; with two or more members and an ``ensemble`` rule ('and', 'or',
      '<', '>', 'majority', or 'mean' = mean map with the fixed threshold) one more segment
      "<rule> ensemble <threshold>";
    * ``segments``: the segments already computed (e.g. loaded from ``wssscam predict``'s files);
      then ``threshold``, ``ensemble`` and ``suppress_negative_slices`` only name them;
      ``measured``: their (metrics rows, agreement rows), likewise already computed;
    * ``reference = (segmentation node, segment)``: table "<prefix> metrics" of Dice, IoU, volumes (cc);
    * two or more methods or models: table "<prefix> agreement" of mean pairwise IoU;
    * ``probabilities``: segmentation network name -> its K x J x I foreground probability (from
      ``wssscam predict``): each becomes a volume node "<prefix> <model> segmentation probability"
      shown like a CAM (the first is the foreground when there is no CAM); the network's own segment
      "<model> segmentation" comes with ``segments``, beside the CAM segments in the one results node.
    """
    probabilities = dict(probabilities or {})
    if not cams and not probabilities:
        raise ValueError("publish_results: no CAMs or segmentation probabilities to publish")
    if ensemble == "mean" and threshold.mode != "fixed":
        raise ValueError(f"the 'mean' ensemble thresholds the mean map with a fixed t; got threshold {threshold.name}")
    several = len(cams) > 1
    affine = world_ijk_to_ras(volume_node)
    out = PublishedResults()
    if segments is None:
        rule = SegmentationRule(threshold, ensemble, None, suppress_negative_slices)
        segments = segment_volumes(cams, rule) if cams else Segments({}, {})
    for model, result in cams.items():
        for method, maps in result.maps.items():
            key = result_key(model, method, several)
            node = _map_node(scene, maps, affine, f"{prefix} {key} CAM", display_level)
            node.SetAttribute("WSSSCam.method", method)
            node.SetAttribute("WSSSCam.model", model)
            out.cam_nodes[key] = node
    for model, probability in probabilities.items():
        key = network_segment_name(model)
        node = _map_node(scene, probability, affine, f"{prefix} {key} probability", display_level)
        node.SetAttribute("WSSSCam.method", "segmentation")
        node.SetAttribute("WSSSCam.model", model)
        out.probability_nodes[key] = node
    out.masks = segments.masks
    first = next(iter(out.map_nodes.values()))
    show_as_foreground(scene, first, opacity=opacity, background_node=volume_node)
    out.segmentation_node = masks_to_segmentation(
        scene, out.masks, volume_node, name=f"{prefix} results", node=segmentation_node
    )
    if reference is not None and reference[0] is not None and reference[1]:
        if measured is not None:
            out.metrics = list(measured[0])
        else:
            out.metrics = measure_masks(
                out.masks, segment_to_mask(scene, reference[0], reference[1], volume_node), affine
            )
        out.metrics_table = _table(scene, out.metrics, f"{prefix} metrics", METRIC_UNITS)
    out.agreement = list(measured[1]) if measured is not None else agreement_rows(segments.members)
    if out.agreement:
        out.agreement_table = _table(scene, out.agreement, f"{prefix} agreement", {})
    return out


def _map_node(scene, maps: torch.Tensor, affine: np.ndarray, name: str, display_level: float):
    """The scalar volume node ``name`` (refilled when it exists) holding ``maps`` (K x J x I in [0, 1]),
    with its own heat table "<name> heat", window/level 0..1 and voxels below ``display_level`` transparent."""
    existing = scene.GetFirstNodeByName(name)
    node = existing if existing is not None and existing.IsA("vtkMRMLScalarVolumeNode") else None
    node = array_to_volume_node(scene, maps.float(), affine, name, node=node)
    table_name = f"{name} heat"
    table = scene.GetFirstNodeByName(table_name)
    table = heat_colour_table(
        scene, table_name, node=table if table is not None and table.IsA("vtkMRMLColorTableNode") else None
    )
    setup_cam_display(scene, node, level=display_level, colour_node=table)
    return node


def _table(scene, rows: list[dict], name: str, units: Mapping[str, str]):
    existing = scene.GetFirstNodeByName(name)
    node = existing if existing is not None and existing.IsA("vtkMRMLTableNode") else None
    return table_node_from_rows(scene, rows, name, node=node, units=units)


# --- one set of result nodes per input volume (the Slicer panel; issue 12) ------------------------

VOLUME_ATTRIBUTE = "WSSSCam.volumeID"


def _remove_earlier_results(scene, volume_id: str, prefix: str, keep: set[str]) -> None:
    """Remove this volume's result nodes of an earlier run that this run did not refill (CAM volumes
    of methods no longer asked for, with their heat tables; a metrics table without a reference now)."""
    stale = []
    for index in range(scene.GetNumberOfNodes()):
        node = scene.GetNthNode(index)
        if node.GetAttribute(VOLUME_ATTRIBUTE) == volume_id and node.GetID() not in keep:
            stale.append(node)
            table = scene.GetFirstNodeByName(f"{node.GetName()} heat") if node.GetName().startswith(prefix) else None
            if table is not None and table.IsA("vtkMRMLColorTableNode"):
                stale.append(table)
    for node in stale:
        scene.RemoveNode(node)


def publish_for_volume(
    scene, volume_node, cams: Mapping[str, object], threshold: Threshold, **options
) -> PublishedResults:
    """:func:`publish_results` into nodes of ``volume_node``'s own, named "WSSSCam <volume name> ..."
    (with the node ID appended when another volume of that name owns them): a run on another volume
    never overwrites this one's nodes; a new run on the same volume refills its nodes and empties its
    results segmentation first (no stale segments, no second segmentation) and removes its earlier
    result nodes this run did not refill (methods no longer asked for). Every node made carries
    the attribute ``WSSSCam.volumeID``; every segment the CAM terminology. ``options`` as for
    :func:`publish_results` (without ``prefix`` and ``segmentation_node``)."""
    from ..panel import result_prefix

    volume_id = volume_node.GetID()
    prefix = result_prefix(volume_node.GetName())
    existing = scene.GetFirstNodeByName(f"{prefix} results")
    if existing is not None and existing.GetAttribute(VOLUME_ATTRIBUTE) != volume_id:
        prefix = result_prefix(volume_node.GetName(), taken_by_other_volume=True, volume_id=volume_id)
        existing = scene.GetFirstNodeByName(f"{prefix} results")
    segmentation_node = existing if existing is not None and existing.IsA("vtkMRMLSegmentationNode") else None
    if segmentation_node is not None:
        segmentation_node.GetSegmentation().RemoveAllSegments()
    out = publish_results(
        scene, volume_node, cams, threshold, segmentation_node=segmentation_node, prefix=prefix, **options
    )
    made = [*out.map_nodes.values(), out.segmentation_node, out.metrics_table, out.agreement_table]
    _remove_earlier_results(scene, volume_id, prefix, {node.GetID() for node in made if node is not None})
    for node in made:
        if node is not None:
            node.SetAttribute(VOLUME_ATTRIBUTE, volume_id)
    segmentation = out.segmentation_node.GetSegmentation()
    for index in range(segmentation.GetNumberOfSegments()):
        segmentation.GetNthSegment(index).SetTag(
            segmentation.GetNthSegment(index).GetTerminologyEntryTagName(), CAM_SEGMENT_TERMINOLOGY
        )
    return out
