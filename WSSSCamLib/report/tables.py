"""Report tables built from the study tables (see the study schema): the Ostrowski et al. 2023 Table 1 form,
the threshold matrix, agreement summaries, CAM-area correlations and a GitHub-markdown writer.

All inputs are pandas DataFrames with the schema's columns; outputs are new DataFrames (inputs are
never modified). Configurations are identified by (model, method, kind); the Empty baseline has
model '', method 'empty', kind 'empty', result 'empty'.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd

POOLED_ROW = "ALL"
MAIN_METRIC = "pooled_dsc_miou"
# Metrics of the 'ALL' rows in the order the main table shows them (others follow alphabetically).
ALL_METRICS = (
    "pooled_dsc_miou",
    "pooled_miou",
    "pooled_fg_dice",
    "pooled_fg_iou",
    "dice_mean_abnormal_slices",
    "iou_mean_abnormal_slices",
    "dice_mean_all_slices",
)
KIND_ORDER = ("empty", "threshold", "ensemble", "refined", "segmentation")
SEGMENTATION = "segmentation"
"""The kind of segmentation networks' rows (the study's ``segment`` stage): model = the network's name."""
SEGMENTATION_LABELS = {"supervised U-Net": "supervised U-Net (fully supervised upper bound)"}
"""Display names of segmentation networks whose table name needs saying more."""
_NAMED_RESULTS = ("mean", "median", "otsu", "adaptive")
_FIXED = re.compile(r"^t=([0-9]*\.?[0-9]+)$")
_PERCENTILE = re.compile(r"^p([0-9]*\.?[0-9]+)$")
CASES_STANDARD_COLUMNS = ("case", "fold", "label", "has_mask", "slices", "abnormal_slices")
"""Columns every cases table has; any other numeric column is an external per-case measure."""


def require_columns(df: pd.DataFrame, columns: Iterable[str], name: str) -> None:
    """Raise ValueError naming the table ``name`` and the columns it lacks."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"{name}: expected a pandas DataFrame, got {type(df).__name__}")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise ValueError(f"{name}: missing column(s) {missing}; has {list(df.columns)}")


def fixed_threshold(result: str) -> float | None:
    """The threshold of a fixed-threshold result name ('t=0.30' -> 0.3), else None."""
    match = _FIXED.match(str(result))
    return float(match.group(1)) if match else None


def result_sort_key(result: str) -> tuple:
    """Sort key for result names: fixed thresholds by value, percentiles by value, then
    mean/median/otsu/adaptive, other names, ensemble member pairs ('t=0.30|t=0.50'), 'empty' last."""
    result = str(result)
    t = fixed_threshold(result)
    if t is not None:
        return (0, t, result)
    match = _PERCENTILE.match(result)
    if match:
        return (1, float(match.group(1)), result)
    if result in _NAMED_RESULTS:
        return (2, float(_NAMED_RESULTS.index(result)), result)
    if result == "empty":
        return (5, 0.0, result)
    if "|" in result:
        return (4, 0.0, result)
    return (3, 0.0, result)


def sorted_results(results: Iterable[str]) -> list[str]:
    """Unique result names in :func:`result_sort_key` order."""
    return sorted(set(map(str, results)), key=result_sort_key)


def config_label(model: str, method: str, kind: str) -> str:
    """Display name of a configuration: 'Empty', 'model / method', the ensemble's name, or a segmentation
    network's name (the supervised U-Net labelled as the fully supervised upper bound)."""
    if kind == "empty":
        return "Empty"
    if kind == "ensemble" or method == "ensemble":
        return str(model)
    if kind == SEGMENTATION:
        return SEGMENTATION_LABELS.get(str(model), str(model))
    return f"{model} / {method}"


def metric_order(metrics: Iterable[str]) -> list[str]:
    """Metric names with :data:`ALL_METRICS` first (in that order), the rest alphabetically."""
    metrics = set(metrics)
    return [m for m in ALL_METRICS if m in metrics] + sorted(metrics - set(ALL_METRICS))


def _first_seen_rank(values: pd.Series) -> dict:
    return {v: i for i, v in enumerate(pd.unique(values))}


def pooled_wide(results: pd.DataFrame) -> pd.DataFrame:
    """The 'ALL' rows of ``results`` as one row per (model, method, kind, result), one column per metric.

    Row order: kind (empty, threshold, ensemble), then model and method in order of first
    appearance in ``results``, then result by :func:`result_sort_key`."""
    require_columns(results, ("case", "model", "method", "result", "kind", "metric", "value"), "results")
    pooled = results[results["case"].astype(str) == POOLED_ROW]
    if pooled.empty:
        raise ValueError("results: no dataset-pooled rows (case == 'ALL')")
    keys = ["model", "method", "kind", "result"]
    duplicated = pooled.duplicated(keys + ["metric"], keep=False)
    if duplicated.any():
        first = pooled[duplicated].iloc[0]
        raise ValueError(f"results: several 'ALL' rows for {dict(first[keys + ['metric']])}")
    wide = pooled.pivot(index=keys, columns="metric", values="value").reset_index()
    wide.columns.name = None
    wide = wide[keys + metric_order(c for c in wide.columns if c not in keys)]
    return _sort_configs(wide, pooled)


def _sort_configs(wide: pd.DataFrame, reference: pd.DataFrame) -> pd.DataFrame:
    model_rank, method_rank = _first_seen_rank(reference["model"]), _first_seen_rank(reference["method"])
    kinds = {k: i for i, k in enumerate(KIND_ORDER)}
    order = wide.assign(
        _kind=wide["kind"].map(lambda k: kinds.get(k, len(kinds))),
        _model=wide["model"].map(model_rank),
        _method=wide["method"].map(method_rank),
        _result=wide["result"].map(result_sort_key) if "result" in wide.columns else 0,
    ).sort_values(["_kind", "_model", "_method", "_result"], kind="stable")
    return wide.loc[order.index].reset_index(drop=True)


def main_table(results: pd.DataFrame, metric: str = MAIN_METRIC) -> pd.DataFrame:
    """Ostrowski et al. 2023 Table 1 form from the 'ALL' rows of ``results``.

    One row per configuration (model, method, kind): the Empty baseline first, then each single
    model x CAM method, then each ensemble. For every configuration the result (threshold rule, or
    for an ensemble its member thresholds) with the highest ``metric`` is chosen; ties go to the
    first result in :func:`result_sort_key` order; NaN values never win (a configuration whose
    values are all NaN keeps its first result with NaN). Columns: model, method, kind, best_result,
    ``metric``, then the other 'ALL' metrics of that same result (order :data:`ALL_METRICS`).
    """
    wide = pooled_wide(results)
    if metric not in wide.columns:
        available = [c for c in wide.columns if c not in ("model", "method", "kind", "result")]
        raise ValueError(f"main_table: metric {metric!r} not among the 'ALL' metrics {available}")
    chosen = []
    for _, group in wide.groupby(["kind", "model", "method"], sort=False):
        values = group[metric].to_numpy(dtype=np.float64)
        position = int(np.nanargmax(values)) if np.isfinite(values).any() else 0
        chosen.append(group.index[position])
    best = wide.loc[chosen].rename(columns={"result": "best_result"})
    others = [c for c in metric_order(wide.columns) if c != metric and c not in ("model", "method", "kind", "result")]
    best = best[["model", "method", "kind", "best_result", metric] + others]
    return _sort_configs(best, results[results["case"].astype(str) == POOLED_ROW])


def best_configuration(table: pd.DataFrame, metric: str = MAIN_METRIC) -> tuple[pd.Series | None, pd.Series | None]:
    """From a :func:`main_table`: (the best non-empty row by ``metric`` or None, the Empty row or None); on
    held-out results an oracle (upper bound), never the report's choice (see :mod:`WSSSCamLib.report.honest`)."""
    require_columns(table, ("kind", metric), "main table")
    empty = table[table["kind"] == "empty"]
    candidates = table[(table["kind"] != "empty") & table[metric].notna()]
    best = candidates.loc[candidates[metric].idxmax()] if not candidates.empty else None
    return best, (empty.iloc[0] if not empty.empty else None)


def best_result(
    results: pd.DataFrame, metric: str = MAIN_METRIC, kinds: Iterable[str] = ("threshold",)
) -> pd.Series | None:
    """Of the pooled ('ALL') rows of ``results`` whose kind is one of ``kinds``, the row with the highest
    ``metric`` value (the first on ties), or None when there is none. On held-out results this is the
    oracle (an upper bound), not a choice: the study's best configuration is
    :func:`~WSSSCamLib.report.honest.best_configurations`, chosen on the training cases."""
    require_columns(results, ("case", "metric", "kind", "value"), "results")
    rows = results[
        (results["case"].astype(str) == POOLED_ROW) & (results["metric"] == metric) & results["kind"].isin(list(kinds))
    ]
    rows = rows[rows["value"].notna()]
    return rows.loc[rows["value"].idxmax()] if not rows.empty else None


def figure_result(results: pd.DataFrame) -> str:
    """The fixed-threshold result that the figures and statistics show: 't=0.50' when it was computed, else
    the middle fixed threshold computed, else 't=0.50'."""
    fixed = sorted(r for r in results["result"].unique() if fixed_threshold(r) is not None)
    return "t=0.50" if "t=0.50" in fixed else (fixed[len(fixed) // 2] if fixed else "t=0.50")


def threshold_table(results: pd.DataFrame, metric: str = MAIN_METRIC) -> pd.DataFrame:
    """Matrix of ``metric`` ('ALL' rows, kind 'threshold'): index (model, method), one column per
    result, columns in :func:`result_sort_key` order, rows in order of first appearance; NaN where a
    configuration lacks that result."""
    wide = pooled_wide(results)
    if metric not in wide.columns:
        raise ValueError(f"threshold_table: metric {metric!r} not among the 'ALL' metrics")
    single = wide[wide["kind"] == "threshold"]
    if single.empty:
        raise ValueError("threshold_table: no 'ALL' rows of kind 'threshold' in results")
    matrix = single.pivot(index=["model", "method"], columns="result", values=metric)
    order = list(dict.fromkeys(zip(single["model"], single["method"])))
    matrix = matrix.loc[pd.MultiIndex.from_tuples(order, names=["model", "method"]), sorted_results(single["result"])]
    matrix.columns.name = "result"
    return matrix


def agreement_summary(agreement: pd.DataFrame) -> pd.DataFrame:
    """Median, quartiles, IQR, mean and count of agreement values per (kind, group, result).

    NaN values are left out of every statistic (n counts the others). Columns: kind, group, result,
    n, median, q1, q3, iqr, mean; kind 'methods' first, then 'models'; groups in order of first
    appearance; results in :func:`result_sort_key` order."""
    require_columns(agreement, ("kind", "group", "result", "value"), "agreement")
    valid = agreement[agreement["value"].notna()]
    rows = []
    for (kind, group, result), values in valid.groupby(["kind", "group", "result"], sort=False)["value"]:
        v = values.to_numpy(dtype=np.float64)
        q1, median, q3 = np.percentile(v, [25, 50, 75])
        rows.append(
            {
                "kind": kind,
                "group": group,
                "result": result,
                "n": int(v.size),
                "median": float(median),
                "q1": float(q1),
                "q3": float(q3),
                "iqr": float(q3 - q1),
                "mean": float(v.mean()),
            }
        )
    columns = ["kind", "group", "result", "n", "median", "q1", "q3", "iqr", "mean"]
    summary = pd.DataFrame(rows, columns=columns)
    if summary.empty:
        return summary
    kinds = {"methods": 0, "models": 1}
    group_rank = _first_seen_rank(agreement["group"])
    order = summary.assign(
        _kind=summary["kind"].map(lambda k: kinds.get(k, 2)),
        _group=summary["group"].map(group_rank),
        _result=summary["result"].map(result_sort_key),
    ).sort_values(["_kind", "_group", "_result"], kind="stable")
    return summary.loc[order.index].reset_index(drop=True)


def _spearman_function() -> Callable[[np.ndarray, np.ndarray], tuple[float, float]]:
    try:
        from ..metrics.statistics import spearman  # the project's own, when present
    except ImportError:
        from scipy.stats import spearmanr

        def spearman(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
            statistic = spearmanr(x, y)
            return float(statistic[0]), float(statistic[1])

    return spearman


def _rho(x: np.ndarray, y: np.ndarray) -> tuple[float, float, int]:
    """Spearman (rho, p, n) over pairs where both are finite; NaN rho/p for n < 3 or constant input."""
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    n = int(x.size)
    if n < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return math.nan, math.nan, n
    rho, p = _spearman_function()(x, y)
    return float(rho), float(p), n


def case_areas(slices_or_results: pd.DataFrame, result: str = "t=0.50") -> pd.DataFrame:
    """Per-case CAM area (voxels) of each single (model, method) at ``result``: index case, one
    column per configuration label ('model / method').

    From a slices table: the sum of tp + fp over the case's slices (test rows when a role column is
    present). From a results table: the 'area_voxels' rows."""
    table = slices_or_results
    if "tp" in table.columns:
        require_columns(table, ("case", "model", "method", "result", "kind", "tp", "fp"), "slices")
        rows = table[(table["kind"] == "threshold") & (table["result"] == result)]
        if "role" in rows.columns:
            rows = rows[rows["role"] == "test"]
        rows = rows.assign(area=(rows["tp"] + rows["fp"]).astype(np.float64))
        long = rows.groupby(["case", "model", "method"], sort=False)["area"].sum().reset_index()
    else:
        require_columns(table, ("case", "model", "method", "result", "kind", "metric", "value"), "results")
        rows = table[
            (table["kind"] == "threshold")
            & (table["result"] == result)
            & (table["metric"] == "area_voxels")
            & (table["case"].astype(str) != POOLED_ROW)
        ]
        long = rows.rename(columns={"value": "area"})[["case", "model", "method", "area"]]
        if long.duplicated(["case", "model", "method"]).any():
            raise ValueError(f"results: several 'area_voxels' rows per case/model/method at {result!r}")
    if long.empty:
        raise ValueError(f"correlation: no per-case CAM areas at result {result!r} (kind 'threshold')")
    long = long.assign(config=[config_label(m, k, "threshold") for m, k in zip(long["model"], long["method"])])
    wide = long.pivot(index="case", columns="config", values="area")
    wide = wide[list(dict.fromkeys(long["config"]))]
    wide.columns.name = None
    return wide


def measure_columns(cases: pd.DataFrame) -> list[str]:
    """External measure columns of a cases table: numeric columns beyond the schema's standard ones."""
    return [c for c in cases.columns if c not in CASES_STANDARD_COLUMNS and pd.api.types.is_numeric_dtype(cases[c])]


def external_measure(cases: pd.DataFrame) -> str | None:
    """The external measure that the report correlates CAM areas with: the first of :func:`measure_columns`, or None."""
    measures = measure_columns(cases)
    return measures[0] if measures else None


def correlation_table(
    slices_or_results: pd.DataFrame,
    cases: pd.DataFrame | None = None,
    measure: str | None = None,
    result: str = "t=0.50",
) -> pd.DataFrame:
    """Spearman rank correlation between per-case CAM areas (see :func:`case_areas`).

    Tidy form, one row per ordered pair (x, y): x is a configuration ('model / method'), y is a
    configuration or ``measure`` (the external per-case column of ``cases``, joined on case).
    Columns: x, y, rho, p, n (cases with both values finite), result; x == y gives rho 1.
    rho and p are NaN for fewer than 3 cases or a constant input. Use :func:`correlation_matrix`
    for the square form."""
    areas = case_areas(slices_or_results, result)
    columns = list(areas.columns)
    if measure is not None:
        if cases is None:
            raise ValueError(f"correlation_table: measure {measure!r} given but no cases table")
        require_columns(cases, ("case", measure), "cases")
        if measure in columns:
            raise ValueError(f"correlation_table: measure {measure!r} has the name of a configuration")
        values = cases.drop_duplicates("case").set_index("case")[measure].astype(np.float64)
        areas = areas.assign(**{measure: values.reindex(areas.index).to_numpy()})
    targets = columns + ([measure] if measure is not None else [])
    rows = []
    for x in columns:
        for y in targets:
            rho, p, n = _rho(areas[x].to_numpy(np.float64), areas[y].to_numpy(np.float64))
            rows.append({"x": x, "y": y, "rho": rho, "p": p, "n": n, "result": result})
    return pd.DataFrame(rows, columns=["x", "y", "rho", "p", "n", "result"])


def correlation_matrix(table: pd.DataFrame, value: str = "rho") -> pd.DataFrame:
    """A :func:`correlation_table` as a matrix: rows x, columns y (in order of appearance)."""
    require_columns(table, ("x", "y", value), "correlation table")
    matrix = table.pivot(index="x", columns="y", values=value)
    matrix = matrix.loc[list(dict.fromkeys(table["x"])), list(dict.fromkeys(table["y"]))]
    matrix.index.name, matrix.columns.name = None, None
    return matrix


def chosen_thresholds(grid: pd.DataFrame) -> pd.DataFrame:
    """The grid rows marked chosen: fold, ensemble, rule, t1, t2, score (sorted by ensemble, fold)."""
    require_columns(grid, ("fold", "ensemble", "rule", "t1", "t2", "score", "chosen"), "threshold_grid")
    chosen = grid[grid["chosen"].astype(bool)][["fold", "ensemble", "rule", "t1", "t2", "score"]]
    rank = _first_seen_rank(grid["ensemble"])
    order = chosen.assign(_e=chosen["ensemble"].map(rank)).sort_values(["_e", "fold"], kind="stable")
    return chosen.loc[order.index].reset_index(drop=True)


def _markdown_cell(value: object, floatfmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA or value is pd.NaT:
        return ""
    if isinstance(value, (float, np.floating)):
        return format(float(value), floatfmt)
    text = str(value)
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_table(df: pd.DataFrame, floatfmt: str = ".3f") -> str:
    """A GitHub-markdown table of ``df`` (no trailing newline).

    A non-default index (named, or not a 0..n-1 RangeIndex) becomes leading columns. Numeric columns
    are right-aligned ('---:'), others left ('---'). Floats use ``floatfmt``; NaN/None is an empty
    cell; '|' and '\\' in text are escaped, newlines become spaces."""
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"markdown_table: expected a pandas DataFrame, got {type(df).__name__}")
    plain_index = (
        isinstance(df.index, pd.RangeIndex) and df.index.start == 0 and df.index.step == 1 and df.index.name is None
    )
    frame = df if plain_index else df.reset_index()
    header = [_markdown_cell(c if not isinstance(c, tuple) else " ".join(map(str, c)), floatfmt) for c in frame.columns]
    align = [
        "---:" if pd.api.types.is_numeric_dtype(frame[c]) and not pd.api.types.is_bool_dtype(frame[c]) else "---"
        for c in frame.columns
    ]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    for row in frame.itertuples(index=False, name=None):
        lines.append("| " + " | ".join(_markdown_cell(v, floatfmt) for v in row) + " |")
    return "\n".join(lines)
