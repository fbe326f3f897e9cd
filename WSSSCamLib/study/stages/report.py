"""The ``report`` stage: the units are gathered into the study tables, figures, overlays and ``report.html``.
It reads every unit present, so after all shards finished (in one output folder, or gathered by
:func:`~WSSSCamLib.study.merge.merge_outputs`) it gives the same tables as one unsharded run."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd

from ... import report
from ...atomic import write_text
from ...errors import NotReadyError
from ...report.gap import gap_closed, gap_title
from .. import aggregate
from ..context import Shard, StudyContext
from ..example_overlays import example_overlays
from ..faithfulness_rows import faithfulness_section, gather_faithfulness
from ..layout import figures_folder
from ..provenance import provenance
from ..slabs import slab_table
from ..unit_store import gather_units, write_parquet
from . import segment
from .retrain import retraining_tables, stale_results


def check_ready(context: StudyContext, markers: list[dict]) -> None:
    """Refuse to report before every unit (and every filtered-retraining result) is finished."""
    output = context.output
    # the training units too: thresholds and ensembles are chosen on each fold's training cases
    expected = {
        (c.case_id, f) for c in context.dataset.cases for f in context.fold_indices if context.role(c.case_id, f)
    }
    missing = sorted(expected - {(m["case"], m["fold"]) for m in markers})
    if missing:
        raise NotReadyError(
            f"{output}: {len(missing)} units are not finished yet (e.g. case {missing[0][0]}, fold {missing[0][1]}); "
            "run the 'cams' stage of every shard first"
        )
    if context.config.filtered_retraining is not None:
        absent = stale_results(context)
        if absent:
            raise NotReadyError(
                f"{output}: filtered retraining {', '.join(absent)} not finished (or done with other settings); "
                "run the 'retrain' stage (of every shard) first"
            )


def with_segment_rows(context: StudyContext, slices: pd.DataFrame) -> pd.DataFrame:
    """``slices`` plus the segmentation networks' held-out rows (with ``segmentation``); refuses while a network
    x fold result is missing or was computed with other settings (its source is re-chosen from ``slices``'
    training rows of each fold, as the segment stage chose it)."""
    if context.config.segmentation is None:
        return slices
    train = slices[slices["role"] == "train"]
    needs = segment.pseudo_labels.needs_units(context.config)
    stale = segment.stale_results(context, lambda fold: train[train["fold"] == fold] if needs else None)
    if stale:
        raise NotReadyError(
            f"{context.output}: segmentation networks {', '.join(stale)} not finished (or done with other settings); "
            "run the 'segment' stage (of every shard) first"
        )
    return pd.concat([slices, segment.segment_rows(context)], ignore_index=True)


def write_tables(output: Path, tables: dict[str, pd.DataFrame]) -> None:
    """Write the study tables: ``<name>.parquet`` for each, plus ``results.csv``."""
    for name, table in tables.items():
        write_parquet(table, output / f"{name}.parquet")
    write_text(output / "results.csv", tables["results"].to_csv(index=False))


def draw_figures(
    results: pd.DataFrame,
    agreement: pd.DataFrame,
    grid: pd.DataFrame,
    correlation: pd.DataFrame,
    shown: str,
    folder: Path,
) -> dict[str, Path]:
    """The report's PNG figures (agreement box plots and correlation at result ``shown``, threshold grid, threshold curves)."""
    figures = {}
    if not agreement.empty and (agreement["result"] == shown).any():
        figures["agreement"] = report.agreement_boxplots(agreement, folder / "agreement.png", result=shown)
    if not grid.empty:
        figures["threshold grid"] = report.threshold_grid_heatmap(grid, folder / "threshold_grid.png")
    if not correlation.empty:
        figures["correlation"] = report.correlation_heatmap(correlation, folder / "correlation.png")
    figures["thresholds"] = report.threshold_curves(results, folder / "thresholds.png")
    return figures


def run(context: StudyContext, shard: Shard, progress: bool) -> Path:
    """Gather the units into the study tables, figures, overlays and ``report.html``; returns the report's path."""
    config, output = context.config, context.output
    slices, agreement, markers = gather_units(output)
    check_ready(context, markers)
    wanted = set(context.fold_indices)
    slices = slices[slices["fold"].isin(wanted)]
    if not agreement.empty:
        agreement = agreement[agreement["fold"].isin(wanted)]
    markers = [m for m in markers if m["fold"] in wanted]
    slices = with_segment_rows(context, slices)
    spec = config.faithfulness  # read before anything is written: missing or stale tables stop the report here
    faithfulness = gather_faithfulness(output, markers, spec) if spec is not None else None
    # every choice below reads training rows only (role 'train'); held-out rows are only measured
    grid = aggregate.grid_search_table(slices)
    thresholds = aggregate.training_threshold_table(slices)
    training = aggregate.training_scores(slices, grid, thresholds)
    test, cv_thresholds = aggregate.with_cross_validated_thresholds(aggregate.test_rows(slices, grid, thresholds))
    write_text(output / "cv_thresholds.csv", cv_thresholds.to_csv(index=False))
    write_text(output / "train_thresholds.csv", thresholds.to_csv(index=False))
    write_text(output / "training_scores.csv", training.to_csv(index=False))
    results = aggregate.results_table(test)
    counts = aggregate.case_counts(test)
    headline = report.headline_table(results, counts, training)
    write_text(output / "headline.csv", headline.to_csv(index=False))
    cases = aggregate.cases_table(context.dataset, context.folds, slices)
    write_tables(
        output,
        {
            "slices": test,
            "results": results,
            "agreement": agreement,
            "threshold_grid": grid,
            "cases": cases,
            "case_counts": counts,
        },
    )
    shown = report.figure_result(results)
    measure = report.external_measure(cases)
    correlation = report.correlation_table(results, cases, measure, result=shown)
    folder = figures_folder(output)
    figures = draw_figures(results, agreement, grid, correlation, shown, folder)
    overlays = example_overlays(context, training, thresholds, folder, config.overlays) if config.overlays else []
    record = provenance(context, markers, time.perf_counter() - context.started)
    write_text(output / "provenance.json", json.dumps(record, indent=1, default=str))
    statistics = aggregate.statistics_table(results, cases, measure, shown)
    write_text(output / "statistics.csv", statistics.to_csv(index=False))
    tables = {f"Statistical tests at {shown}": statistics}
    if spec is not None:
        tables.update(faithfulness_section(output, faithfulness, spec))
    slabs = slab_table(context.recipe, test)
    if slabs is not None:
        tables["Volume recipe: the items measured"] = slabs
    if config.segmentation is not None:
        gap = gap_closed(headline)
        write_text(output / "gap_closed.csv", gap.to_csv(index=False))
        networks = segment.segment_table(context)
        write_text(output / "segment.csv", networks.to_csv(index=False))
        tables[gap_title(headline)] = gap
        tables["Segmentation networks per fold (pseudo-label source, slices, dropped, ignored share)"] = networks
        candidates = segment.candidate_table(context)
        if not candidates.empty:
            write_text(output / "pseudo_label_candidates.csv", candidates.to_csv(index=False))
            tables[
                "Pseudo-label candidates per fold (labels against the fold's training masks; the highest lesion-slice "
                "Dice is used)"
            ] = candidates
    if config.filtered_retraining is not None:
        per_fold, summary = retraining_tables(context)
        write_text(output / "retraining.csv", per_fold.to_csv(index=False))
        spec = config.filtered_retraining
        tables[
            f"Retraining {spec.model} on filtered slices (Guan & Loew 2021; cam = {spec.method} map, {spec.epochs} epochs; "
            "checkpoint = the model as trained)"
        ] = summary
    path = report.write_report(
        output,
        results,
        agreement,
        grid,
        cases,
        record,
        figures,
        overlays,
        tables=tables,
        correlation_result=shown,
        headline=headline,
        training_masks=report.training_masks(training),
    )
    if progress:
        print(f"report: {path}", flush=True)
    return path
