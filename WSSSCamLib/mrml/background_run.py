"""The Slicer panel's run: the scene's inputs written to files, ``wssscam predict`` in a child process,
and its files loaded into the scene only when the run succeeded.

:class:`PanelRun` is what the module's Logic drives from a GUI timer: :meth:`~PanelRun.start`
(writes the inputs and starts the child, fast), :meth:`~PanelRun.poll` (never blocks),
:meth:`~PanelRun.cancel` (the child is gone within a second; nothing was added to the scene), and
:meth:`~PanelRun.load` once ``state`` is ``succeeded``. Loading reads the CAM volumes, the
``.seg.nrrd`` and the tables predict wrote; nothing is recomputed.
"""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data.readers import read_volume, write_volume
from ..data.segmentation_files import read_seg_nrrd
from ..inference import VolumeCams
from ..masks import Threshold
from ..predict.background import SUCCEEDED, BackgroundPredict
from ..predict.run import read_result
from ..predict.segments import Segments
from .results import PublishedResults, publish_for_volume
from .segmentations import segment_to_mask
from .volumes import nodes_to_volume

CASE = "input"


def _write_mask(mask: np.ndarray, affine: np.ndarray, path: Path) -> str:
    write_volume(np.asarray(mask, dtype=np.uint8), affine, path, compress=False)
    return path.name


class PanelRun:
    """One run of the panel (see the module docstring).

    ``volume_nodes``: the input volume (its grid is the output grid) and further channels;
    ``channel_order``: their indices in the model card's channel order (default: as given); ``checkpoints``: one or more (an ensemble of models);
    ``reference``: (segmentation node, segment ID) for the metrics table; ``region``: K x J x I
    bool mask (Seg- methods); ``folder``: a fresh working folder for the inputs and outputs.
    """

    def __init__(
        self,
        scene,
        volume_nodes: Sequence,
        checkpoints: Sequence[str],
        folder: str | Path,
        methods: Sequence[str],
        threshold: Threshold,
        ensemble: str | None = None,
        empty_when_negative: bool = False,
        target_class: str | int | None = None,
        layers: Sequence[str] | None = None,
        device: str = "auto",
        batch_size: int = 16,
        reference: tuple | None = None,
        region: np.ndarray | None = None,
        python: str | None = None,
        opacity: float = 0.5,
        display_level: float = 0.2,
        channel_order: Sequence[int] | None = None,
    ) -> None:
        self.scene, self.volume_nodes, self.folder = scene, list(volume_nodes), Path(folder)
        self.threshold, self.ensemble, self.empty_when_negative = threshold, ensemble, empty_when_negative
        self.reference, self.opacity, self.display_level = reference, opacity, display_level
        self.out = self.folder / "out"
        manifest = self._write_inputs(region, channel_order)
        arguments = [
            "--manifest",
            manifest,
            "--out",
            self.out,
            "--methods",
            ",".join(methods),
            "--threshold",
            threshold.name,
            "--device",
            device,
            "--batch-size",
            str(batch_size),
        ]
        for checkpoint in checkpoints:
            arguments += ["--checkpoint", checkpoint]
        if ensemble:
            arguments += ["--ensemble", ensemble]
        if empty_when_negative:
            arguments.append("--empty-when-negative")
        if target_class not in (None, ""):
            arguments += ["--target-class", str(target_class)]
        if layers:
            arguments += ["--layers", ",".join(layers)]
        self.process = BackgroundPredict([str(a) for a in arguments], python)
        self._reader: threading.Thread | None = None
        self._files: PredictFiles | None = None
        self._read_error: Exception | None = None

    def _write_inputs(self, region: np.ndarray | None, channel_order: Sequence[int] | None) -> Path:
        """Channels (resampled onto the first volume's grid, then put in ``channel_order``: indices into
        ``volume_nodes`` in the model card's order), reference and region as NRRD files, and the manifest."""
        inputs = self.folder / "inputs"
        volume = nodes_to_volume(self.volume_nodes)
        channels = volume.array if volume.array.ndim == 4 else volume.array[None]
        if channel_order is not None:
            channels = channels[list(channel_order)]
        entry: dict = {"case": CASE, "images": []}
        for number, channel in enumerate(channels):
            path = inputs / f"channel{number}.nrrd"
            write_volume(
                channel.astype(np.float32), volume.ijk_to_ras, path, compress=False
            )  # a working file: no time on gzip
            entry["images"].append(f"inputs/{path.name}")
        if self.reference is not None:
            mask = segment_to_mask(self.scene, self.reference[0], self.reference[1], self.volume_nodes[0])
            entry["reference"] = "inputs/" + _write_mask(mask, volume.ijk_to_ras, inputs / "reference.nrrd")
        if region is not None:
            entry["region"] = "inputs/" + _write_mask(region, volume.ijk_to_ras, inputs / "region.nrrd")
        manifest = self.folder / "manifest.json"
        manifest.write_text(json.dumps([entry], indent=1))
        return manifest

    def start(self) -> PanelRun:
        self.process.start()
        return self

    def poll(self) -> list[dict]:
        """New progress events (never blocks). Once the child succeeded, its files are read on a
        worker thread, so :meth:`load` on the main thread only makes the nodes."""
        events = self.process.poll()
        if self.process.state == SUCCEEDED and self._reader is None:
            self._reader = threading.Thread(target=self._read_files, daemon=True)
            self._reader.start()
        return events

    def _read_files(self) -> None:
        try:
            self._files = read_predict_files(self.out / CASE)
        except Exception as error:  # noqa: BLE001 - reported by load() on the main thread
            self._read_error = error

    @property
    def ready(self) -> bool:
        """True when the run succeeded and its files have been read (then :meth:`load` is quick)."""
        return self._reader is not None and not self._reader.is_alive()

    def cancel(self) -> float:
        """Stop the child; seconds until it exited. The scene is untouched."""
        return self.process.cancel()

    def cleanup(self) -> None:
        """Remove the working folder (inputs and outputs) once the run is over and loaded, cancelled or failed."""
        if self.state == "running":
            raise RuntimeError("the run is still running; cancel it before removing its folder")
        if self._reader is not None:
            self._reader.join()
        shutil.rmtree(self.folder, ignore_errors=True)

    @property
    def state(self) -> str:
        return self.process.state

    @property
    def fraction(self) -> float:
        return self.process.fraction

    @property
    def error(self) -> str:
        return self.process.error

    def load(self) -> PublishedResults:
        """Put the run's files into the scene (CAM volumes, segments, tables); only after success."""
        if self.state != SUCCEEDED:
            raise RuntimeError(f"the run has not succeeded (state: {self.state}); nothing to load")
        if self._reader is not None:
            self._reader.join()
        if self._read_error is not None:
            raise self._read_error
        return load_predict_results(
            self.scene,
            self.volume_nodes[0],
            self._files or self.out / CASE,
            self.threshold,
            self.ensemble,
            self.empty_when_negative,
            self.reference,
            self.opacity,
            self.display_level,
        )


@dataclass
class PredictFiles:
    """A case folder of ``wssscam predict`` read into memory: the record (``result.json``), the CAMs
    (model -> VolumeCams), the segments, the metrics and agreement rows, and the segmentation
    networks' foreground probabilities (model -> K x J x I)."""

    record: dict
    cams: dict
    segments: Segments
    metrics: list[dict]
    agreement: list[dict]
    probabilities: dict = field(default_factory=dict)


def read_predict_files(case_folder: str | Path) -> PredictFiles:
    """Read one case folder written by ``wssscam predict`` (no MRML; safe on a worker thread)."""
    folder = Path(case_folder)
    record = read_result(folder)
    if record is None:
        raise FileNotFoundError(f"{folder / 'result.json'}: missing or unreadable; the run did not finish")
    cams = {}
    for model, entry in record["models"].items():
        maps = {
            method: torch.from_numpy(read_volume(folder / relative).array) for method, relative in entry["cams"].items()
        }
        cams[model] = VolumeCams(maps, torch.tensor(entry["probabilities"]), entry["target_class"], entry["axis"])
    masks, _ = read_seg_nrrd(folder / record["files"]["segmentation"])
    ordered = {name: torch.from_numpy(masks[name]) for name in record["segments"]}
    members = {tuple(member): ordered[name] for name, member in record["members"].items()}
    without_case = [
        [{k: v for k, v in row.items() if k != "case"} for row in record[key]] for key in ("metrics", "agreement")
    ]
    probabilities = {
        model: torch.from_numpy(read_volume(folder / entry["probability"]).array)
        for model, entry in record.get("segmentations", {}).items()
    }
    return PredictFiles(record, cams, Segments(ordered, members), *without_case, probabilities)


def load_predict_results(
    scene,
    volume_node,
    files: PredictFiles | str | Path,
    threshold: Threshold,
    ensemble: str | None = None,
    empty_when_negative: bool = False,
    reference: tuple | None = None,
    opacity: float = 0.5,
    display_level: float = 0.2,
) -> PublishedResults:
    """Publish one case of ``wssscam predict`` (its folder, or :func:`read_predict_files` of it) into
    nodes of ``volume_node``'s own (:func:`~WSSSCamLib.mrml.results.publish_for_volume`): CAM volumes,
    segmentation networks' probability volumes, the segments of its ``.seg.nrrd`` (in order, the
    networks' own segments after the CAM segments, in the one results segmentation node), per-slice
    probabilities, metrics and agreement - nothing is recomputed."""
    files = files if isinstance(files, PredictFiles) else read_predict_files(files)
    return publish_for_volume(
        scene,
        volume_node,
        files.cams,
        threshold,
        ensemble=ensemble,
        suppress_negative_slices=empty_when_negative,
        reference=reference,
        opacity=opacity,
        display_level=display_level,
        segments=files.segments,
        measured=(files.metrics, files.agreement),
        probabilities=files.probabilities,
    )
