"""Running a study: its stages in order over one :class:`~WSSSCamLib.study.context.StudyContext`,
resumable and shardable (``wssscam study``).

Stages (modules of :mod:`WSSSCamLib.study.stages`), each safe to stop at any point and to run again:
``train`` (cross-validate the models), ``cams`` (every (case, fold) unit), ``retrain`` (the filtered
retraining, with ``filtered_retraining``), ``segment`` (pseudo-label, self-trained and supervised U-Nets per
fold, with ``segmentation``; it reads the fold's training units, so it runs after every shard's ``cams``),
``report`` (tables, figures, ``report.html``).

``folds`` (e.g. ``[0, 2]``) restricts every stage to those folds: ``train`` trains them, ``cams`` computes
their units, ``report`` reports them alone (a study reports one fold as it reports k).
``shard=(i, n)`` restricts ``train``, ``retrain`` and ``segment`` to folds ``k`` with ``k % n == i`` and ``cams`` to
cases whose position in the dataset is ``i`` modulo ``n``; the ``report`` stage reads every unit
present, so after all shards finished it gives the same tables as one unsharded run.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from ..atomic import remove_stale_temporaries
from ..devices import resolve_device
from ..errors import InvalidInputError
from ..lock import folder_lock
from .config import StudyConfig
from .context import Shard, StudyContext
from .provenance import check_config_unchanged
from .stages import STAGES as STAGE_RUNS

STAGES: tuple[str, ...] = tuple(STAGE_RUNS)
"""The stage names, in the order a study runs them."""


def check_devices(config: StudyConfig) -> None:
    """Refuse, before any work, a study device or a model's training device that this machine does not have."""
    resolve_device(config.device, f"{config.source}: device")
    for index, spec in enumerate(config.models):
        if "device" in spec.train:
            resolve_device(spec.train["device"], f"{config.source}: models[{index}].train.device")


def run_study(
    config: StudyConfig,
    shard: Shard = (0, 1),
    stages: Iterable[str] = STAGES,
    progress: bool = True,
    folds: Iterable[int] | None = None,
) -> Path | None:
    """Run the given stages of the study (on ``folds`` only, when given); returns the report's path when the report stage ran."""
    stages = list(stages)
    if not (0 <= shard[0] < shard[1]):
        raise InvalidInputError(f"shard {shard[0]}/{shard[1]}: expected i/n with 0 <= i < n")
    unknown = set(stages) - set(STAGES)
    if unknown:
        raise InvalidInputError(f"unknown stages {sorted(unknown)}; stages are {list(STAGES)}")
    check_devices(config)
    with folder_lock(config.output, shard, what=f"wssscam study, stages {','.join(stages)}") as alone:
        if alone:  # no other process writes here: what killed writers left behind can go
            remove_stale_temporaries(config.output)
        context = StudyContext.open(config, list(folds) if folds is not None else None)
        check_config_unchanged(config)
        report = None
        for name, run in STAGE_RUNS.items():
            if name in stages:
                report = run(context, shard, progress)
        return report if "report" in stages else None
