"""The rules of the Slicer panel, in plain Python (no Qt, no Slicer application), tested headless.

The module's Widget binds widgets to the parameter node and asks these functions what to show and
what to store; it never decides anything itself. Conventions:

* a checkpoint path is "unset" when it is empty or ``"."`` (what ``str(pathlib.Path())`` gives, the
  parameter node's default); an unset path is never remembered and never replaces a remembered one;
* the target class defaults to the card's *last* class (the positive class of a binary classifier);
  a class saved in the scene wins when the card has it;
* threshold values: fixed t in [0, 1]; percentile q in [1.5, 99.5] (default 95; q <= 1 would read as a fixed t
  carried over from the fixed mode); adaptive block size
  an odd integer in [3, 99], step 2 (default 15); mean/median/Otsu take no value;
* result node names carry the input volume's name, so each volume keeps its own results;
* extra channels are ordered by the model card's ``channel_names``, matched to volume names;
* a checkpoint is a "classifier" or a "segmentation" network (its card's ``is_segmentation``); the
  classifier CAM methods explain classifiers, the Seg- methods segmentation networks; a segmentation
  network needs no CAM method (``wssscam predict`` always writes its own segment), so for it the
  classifier methods are disabled and the CAM settings (target class, layers, threshold, ensemble,
  negative slices) are disabled until a Seg- method is checked; a 3D U-Net over the stack of slices (the
  study's ``dims: 3`` networks, kind "3D segmentation") is explained by no method (the Seg- methods run slice
  by slice), so for it alone every method and the CAM settings are disabled.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

UNSET_PATHS = ("", ".")
CLASSIFIER = "classifier"
SEGMENTATION = "segmentation"
STACK_SEGMENTATION = "3D segmentation"


@dataclass(frozen=True)
class ValueSpec:
    """What the threshold value slider offers in one mode; set the range before the step
    (ctkSliderWidget rejects a step larger than its current range)."""

    enabled: bool
    minimum: float
    maximum: float
    step: float
    decimals: int
    default: float
    odd: bool = False

    def valid(self, value: float) -> bool:
        """Whether ``value`` is allowed in this mode (always True when the mode takes no value)."""
        if not self.enabled:
            return True
        if not (math.isfinite(value) and self.minimum <= value <= self.maximum):
            return False
        return not self.odd or (float(value).is_integer() and int(value) % 2 == 1)

    def coerce(self, value: float) -> float:
        """``value`` when valid, else the mode's default."""
        return float(value) if self.valid(value) else self.default


THRESHOLD_SPECS: dict[str, ValueSpec] = {
    "fixed": ValueSpec(True, 0.0, 1.0, 0.01, 2, 0.5),
    "percentile": ValueSpec(True, 1.5, 99.5, 0.5, 1, 95.0),
    "mean": ValueSpec(False, 0.0, 1.0, 0.01, 2, 0.5),
    "median": ValueSpec(False, 0.0, 1.0, 0.01, 2, 0.5),
    "otsu": ValueSpec(False, 0.0, 1.0, 0.01, 2, 0.5),
    "adaptive": ValueSpec(True, 3.0, 99.0, 2.0, 0, 15.0, odd=True),
}


def threshold_spec(mode: str) -> ValueSpec:
    """The value slider's settings for a threshold mode; ``KeyError`` for an unknown mode."""
    return THRESHOLD_SPECS[mode]


def threshold_value(mode: str, value: float) -> float:
    """The value to store and use for ``mode``: ``value`` if it is valid there, else the default."""
    return threshold_spec(mode).coerce(value)


def threshold_argument(mode: str, value: float) -> float | None:
    """The value ``WSSSCamLib.masks.Threshold`` takes: None for the modes without a value."""
    spec = threshold_spec(mode)
    return spec.coerce(value) if spec.enabled else None


def checkpoint_or_none(path: str | os.PathLike | None) -> str | None:
    """The checkpoint path as a string, or None when unset ("" or ".")."""
    text = "" if path is None else str(path).strip()
    return None if text in UNSET_PATHS else text


def initial_checkpoint(in_scene: str | os.PathLike | None, remembered: str | None) -> str | None:
    """The checkpoint to show when the panel opens: the scene's, else the remembered one if that file
    still exists, else None."""
    scene = checkpoint_or_none(in_scene)
    if scene is not None:
        return scene
    remembered = checkpoint_or_none(remembered)
    return remembered if remembered is not None and Path(remembered).is_file() else None


def checkpoint_to_remember(path: str | os.PathLike | None, card_read: bool) -> str | None:
    """The path to store in the settings after a checkpoint change: only a set path whose model card
    was read (never "." and never a broken choice)."""
    path = checkpoint_or_none(path)
    return path if path is not None and card_read else None


def target_class(class_names: Sequence[str], saved: str) -> str:
    """The class to select after the class list is filled: the saved one if the card has it, else the
    last class; "" when there are no classes."""
    if saved and saved in class_names:
        return saved
    return class_names[-1] if class_names else ""


def segment_to_select(saved_id: str, segment_ids: Sequence[str]) -> str:
    """The segment to select in a segment selector after the parameter node (or a loaded scene) set
    its segmentation: the saved segment ID when the segmentation has it, else the first segment."""
    if saved_id and saved_id in segment_ids:
        return saved_id
    return segment_ids[0] if segment_ids else ""


def default_export_directory(saved: str | None, documents: str | None, home: str | None = None) -> str:
    """Where exports go: the saved folder if it exists, else the user's documents folder, else the
    home folder (never the working directory, which is "/" for an app started from the macOS Finder)."""
    for candidate in (saved, documents):
        if candidate and candidate not in UNSET_PATHS and Path(candidate).is_absolute() and Path(candidate).is_dir():
            return str(candidate)
    return str(Path(home) if home else Path.home())


def result_prefix(volume_name: str, taken_by_other_volume: bool = False, volume_id: str = "") -> str:
    """Prefix of the result node names of one input volume: "WSSSCam <volume name>", with the node ID
    appended when another volume of the same name already owns that prefix."""
    prefix = f"WSSSCam {volume_name}".strip()
    return f"{prefix} ({volume_id})" if taken_by_other_volume and volume_id else prefix


def channel_order(volume_names: Sequence[str], channel_names: Sequence[str]) -> list[int]:
    """Indices into ``volume_names`` (the input volume first, then the extra channels in any order)
    giving the model card's channel order.

    A volume belongs to a channel when the channel's name occurs in the volume's name (case-folded);
    a channel matched by exactly one unused volume takes it; when one channel and one volume remain
    unmatched they go together. ``ValueError`` when the counts differ or the match is ambiguous.
    """
    count = len(channel_names)
    if len(volume_names) != count:
        raise ValueError(
            f"the model takes {count} channel(s) ({', '.join(channel_names)}); {len(volume_names)} volume(s) were given"
        )
    if count == 1:
        return [0]
    order: list[int | None] = [None] * count
    used: set[int] = set()
    for channel, name in enumerate(channel_names):
        matches = [v for v, volume in enumerate(volume_names) if name.casefold() in volume.casefold() and v not in used]
        if len(matches) == 1:
            order[channel] = matches[0]
            used.add(matches[0])
    free_channels = [c for c, v in enumerate(order) if v is None]
    free_volumes = [v for v in range(count) if v not in used]
    if len(free_channels) == 1:
        order[free_channels[0]] = free_volumes[0]
    elif free_channels:
        missing = ", ".join(channel_names[c] for c in free_channels)
        raise ValueError(
            f"cannot tell which volume is which channel ({missing}): name each volume after its channel "
            f"(the model card's channels: {', '.join(channel_names)})"
        )
    return [int(v) for v in order if v is not None]


def checkpoint_kind(card) -> str:
    """:data:`STACK_SEGMENTATION` for the card of a 3D U-Net over the stack of slices
    (``card.is_stack_segmentation``), :data:`SEGMENTATION` for another segmentation network
    (``card.is_segmentation``), else :data:`CLASSIFIER`."""
    if getattr(card, "is_stack_segmentation", False):
        return STACK_SEGMENTATION
    return SEGMENTATION if getattr(card, "is_segmentation", False) else CLASSIFIER


def is_seg_method(method: str) -> bool:
    """Whether a CAM method explains segmentation networks (the Seg- methods)."""
    return method.startswith("seg-")


def offered_methods(methods: Sequence[str], kinds: Sequence[str]) -> dict[str, bool]:
    """Which of ``methods`` the methods list enables for the chosen checkpoints' ``kinds`` (the main
    checkpoint's first, then the ensemble's): the classifier methods when a classifier is among them,
    the Seg- methods when a segmentation network is; every method while no card is read (``kinds`` empty)."""
    if not kinds:
        return {m: True for m in methods}
    return {m: (SEGMENTATION if is_seg_method(m) else CLASSIFIER) in kinds for m in methods}


def methods_to_run(checked: Sequence[str], kinds: Sequence[str]) -> list[str]:
    """The checked methods that explain one of the checkpoints (what the run passes as ``--methods``;
    empty for segmentation networks alone: their own segments need no CAM)."""
    offered = offered_methods(checked, kinds)
    return [m for m in checked if offered[m]]


def target_class_argument(name: str, kinds: Sequence[str], methods: Sequence[str]) -> str | None:
    """The target class the run passes (``--target-class``), named from the main checkpoint's card: None
    when no CAM is computed, or when the main checkpoint is a segmentation network and no Seg- method
    runs (the classifiers then use their own last class; a segmentation network's own segment needs none)."""
    runnable = methods_to_run(methods, kinds)
    if not name or not runnable:
        return None
    if kinds and kinds[0] in (SEGMENTATION, STACK_SEGMENTATION) and not any(is_seg_method(m) for m in runnable):
        return None
    return name


@dataclass(frozen=True)
class PanelControls:
    """What the panel enables for the chosen checkpoints: ``methods`` (method -> enabled in the list),
    ``cam_settings`` (target class, layers, threshold, ensemble, negative slices: they act on CAMs only)
    and a ``note`` under the model card."""

    methods: dict[str, bool] = field(default_factory=dict)
    cam_settings: bool = True
    note: str = ""


def panel_controls(methods: Sequence[str], checked: Sequence[str], kinds: Sequence[str]) -> PanelControls:
    """The controls for ``kinds`` (see :func:`offered_methods`) with the ``checked`` methods: the CAM
    settings are enabled when a CAM will be computed (a classifier is chosen, or a Seg- method checked)."""
    cams = not kinds or CLASSIFIER in kinds or bool(methods_to_run(checked, kinds))
    return PanelControls(offered_methods(methods, kinds), cams, kinds_note(kinds))


def kinds_note(kinds: Sequence[str]) -> str:
    """What the panel says when a segmentation network is among the checkpoints ("" otherwise)."""
    if SEGMENTATION in kinds:
        return (
            "Segmentation network: its own segment ('<model> segmentation', the argmax) and its probability map are "
            "added beside the CAM results; CAM methods are optional (the Seg- methods explain it within a region)."
        )
    if STACK_SEGMENTATION in kinds:
        return (
            "3D segmentation network over the stack of slices: its own segment ('<model> segmentation') and its "
            "probability map are added; no CAM method explains it (the Seg- methods run slice by slice)."
        )
    return ""


@dataclass(frozen=True)
class ApplyState:
    """What decides whether Apply is enabled. ``checkpoint_kinds``: the kind of each checkpoint whose
    card was read (the main one first; empty while none is read); ``has_region``: a region segment or
    ROI is chosen (the Seg- methods need one)."""

    has_input_volume: bool
    checkpoint: str | None
    card_error: str | None
    methods: Sequence[str]
    threshold_mode: str
    threshold_value: float
    ensemble_rule: str
    running: bool
    checkpoint_kinds: Sequence[str] = ()
    has_region: bool = False


def apply_blocker(state: ApplyState) -> str:
    """Why Apply is disabled ("" when it may run)."""
    if state.running:
        return "a computation is running"
    if not state.has_input_volume:
        return "select an input volume"
    if checkpoint_or_none(state.checkpoint) is None:
        return "select a model checkpoint"
    if state.card_error:
        return f"the checkpoint cannot be used: {state.card_error}"
    kinds = tuple(state.checkpoint_kinds)
    runnable = methods_to_run(state.methods, kinds)
    if not runnable and (not kinds or CLASSIFIER in kinds):
        return "check at least one CAM method"
    if CLASSIFIER in kinds and all(is_seg_method(m) for m in runnable):
        return (
            "check at least one CAM method for the classifier (grad-cam, ...); "
            "the Seg- methods explain segmentation networks"
        )
    if any(is_seg_method(m) for m in runnable) and not state.has_region:
        return "the Seg- methods need a region: choose a region segment or ROI"
    if not runnable:
        return ""  # segmentation networks alone: no CAM, so no threshold to check
    if not threshold_spec(state.threshold_mode).valid(state.threshold_value):
        return f"the threshold value {state.threshold_value:g} is not valid in {state.threshold_mode} mode"
    if state.ensemble_rule == "mean" and state.threshold_mode != "fixed":
        return "the 'mean' ensemble needs the fixed threshold mode"
    return ""
