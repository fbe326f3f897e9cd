"""What produced a study's outputs: the configuration fingerprint that guards the units, and the
provenance record written with the report (configuration, command, versions, checkpoint hashes,
seeds, folds, unit timings)."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
import time

from ..atomic import write_text
from ..errors import InvalidInputError
from ..training.checkpoint import library_versions
from .config import StudyConfig
from .context import StudyContext
from .layout import checkpoint_path, config_file, unit_markers

UNITS_VERSION = 2
"""What a unit holds; 2: training units count every single configuration too (the training-case threshold rule)."""


def config_fingerprint(config: StudyConfig) -> str:
    """A hash of everything that decides what a unit computes (not the output folder, device, batch size, overlays or path permissions)."""
    ignored = ("output", "device", "batch_size", "overlays", "source", "allow_outside_dataset")
    data = {k: v for k, v in config.as_dict().items() if k not in ignored}
    data["filtered_retraining"] = None  # retraining results carry their own fingerprint (retraining.result_fingerprint)
    data.pop("faithfulness", None)  # faithfulness tables carry their own (faithfulness_rows.settings_fingerprint)
    data.pop("segmentation", None)  # segment results carry their own (stages.segment: result fingerprints)
    for key in ("split_file", "test_dataset", "refinements"):  # absent keys leave earlier fingerprints as they were
        if not data.get(key):
            data.pop(key, None)
    data["units"] = UNITS_VERSION
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def check_config_unchanged(config: StudyConfig) -> None:
    """Write ``config.json``; refuse to mix units of another configuration into this output folder."""
    path = config_file(config.output)
    fingerprint = config_fingerprint(config)
    if path.exists() and unit_markers(config.output):
        previous = json.loads(path.read_text()).get("fingerprint")
        if previous not in (None, fingerprint):
            raise InvalidInputError(
                f"{path}: the units in {config.output} were computed with another configuration "
                f"(fingerprint {previous}, now {fingerprint}); use a new output folder, or delete its units/ folder to recompute"
            )
    write_text(path, json.dumps({**config.as_dict(), "fingerprint": fingerprint}, indent=1))


def stage_seconds(markers: list[dict]) -> dict[str, float]:
    """Seconds per unit stage (read, cams, masks+metrics, ...) summed over the units' markers."""
    totals: dict[str, float] = {}
    for marker in markers:
        for stage, seconds in marker["seconds"].items():
            totals[stage] = totals.get(stage, 0.0) + seconds
    return {k: round(v, 2) for k, v in totals.items()}


def provenance(context: StudyContext, markers: list[dict], seconds: float) -> dict:
    """The provenance record of a report: ``seconds`` is the wall time of the run so far."""
    config, folds = context.config, context.folds
    checkpoints = {
        f"{spec.name}/fold{f}": context.checkpoint(spec, f).sha256
        for spec in config.models
        for f in range(context.fold_count)
        if checkpoint_path(config.output, spec, f).exists()
    }
    return {
        "config": config.as_dict(),
        "command": " ".join(sys.argv),
        "versions": {**library_versions(), "platform": platform.platform()},
        "checkpoints": checkpoints,
        "seeds": {"study": config.seed, "folds": folds.seed},
        "folds": folds.folds,
        "units": len(markers),
        "unit_seconds": stage_seconds(markers),
        "report_written": time.strftime("%Y-%m-%d %H:%M:%S"),
        "report_seconds": round(seconds, 1),
    }
