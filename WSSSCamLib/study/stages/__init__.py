"""The study's stages, one module each, every one ``run(context, shard, progress)`` over one
:class:`~WSSSCamLib.study.context.StudyContext`; each is safe to stop at any point and to run again.
A new stage is a new module here and an entry in :data:`STAGES`."""

from __future__ import annotations

from collections.abc import Callable

from . import cams, report, retrain, segment, train

STAGES: dict[str, Callable[..., object]] = {
    "train": train.run,
    "cams": cams.run,
    "retrain": retrain.run,
    "segment": segment.run,
    "report": report.run,
}
"""Stage name -> its ``run``, in the order a study runs them."""
