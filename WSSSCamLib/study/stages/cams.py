"""The ``cams`` stage: every unfinished (case, fold) unit of this shard's cases and the selected folds
(see :mod:`WSSSCamLib.study.units`): held-out units (role ``test``) and training units (role ``train``,
for the thresholds and ensembles chosen on the training cases); a case a fold does not use (a fixed
split's unlisted cases) has no unit there. A unit whose marker exists is skipped, so a killed run
continues where it stopped without duplicating rows. Cases are taken by position: case i belongs to shard i % n.
With the ``faithfulness`` key a held-out unit also gets its faithfulness table (before its marker); a finished
held-out unit without a table of the configured settings gets only that table (role ``faithfulness`` below)."""

from __future__ import annotations

from ...devices import resolve_device
from ..context import Shard, StudyContext, in_shard
from ..faithfulness_rows import case_faithfulness, faithfulness_current, write_faithfulness
from ..unit_store import unit_done, write_unit
from ..units import CaseSlices, Timings, held_out_unit, read_case_slices, training_unit


def run(context: StudyContext, shard: Shard, progress: bool) -> int:
    """Compute every unfinished unit of this shard's cases; returns the number of units computed."""
    config = context.config
    device = resolve_device(config.device)
    spec = config.faithfulness
    todo = []
    for index, case in enumerate(context.dataset.cases):
        if not in_shard(index, shard):
            continue
        for fold in context.fold_indices:
            role = context.role(case.case_id, fold)
            if role is not None and not unit_done(config.output, case.case_id, fold):
                todo.append((case, fold, role))
            elif (
                role == "test"
                and spec is not None
                and not faithfulness_current(config.output, case.case_id, fold, spec)
            ):
                todo.append((case, fold, "faithfulness"))
    bar = None
    if progress and todo:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(todo), desc="cams", unit="unit")
    current: CaseSlices | None = None
    for case, fold, role in todo:
        timings = Timings()
        with timings.stage("read+preprocess"):
            if current is None or current.case_id != case.case_id:
                current = read_case_slices(case, context.recipe)
        models = context.fold_models(fold, device)
        if role == "test":
            slices, agreement = held_out_unit(current, fold, models, config, device, timings)
        elif role == "train":
            slices, agreement = training_unit(current, fold, models, config, device, timings), None
        if role in ("test", "faithfulness") and spec is not None:  # before the marker
            frame = case_faithfulness(current, fold, models, spec, config.batch_size, device, timings)
            write_faithfulness(config.output, case.case_id, fold, frame)
        if role != "faithfulness":  # a finished unit that only lacked its faithfulness table keeps its marker
            with timings.stage("write"):
                write_unit(config.output, case.case_id, fold, role, slices, agreement, timings, len(current.inputs))
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    return len(todo)
