"""The faithfulness table of a study: per model x method, the mean of each faithfulness and pointing
metric over the held-out cases with its case-level bootstrap 95 % interval.

Input: the per-slice faithfulness rows (columns ``case``, ``model``, ``method``, ``deletion_auc``,
``insertion_auc``, ``drop``, ``increase``, ``pointing``, ``energy``; NaN where a metric does not apply,
e.g. pointing on a slice without reference). Each case first averages its sampled slices (NaN ignored), so
every case weighs the same however many slices it gave; the table's value is the mean of those case means,
and its interval ``scipy.stats.bootstrap`` over the cases (percentile method, ``RESAMPLES`` resamples,
seeded, as the headline's intervals: :mod:`WSSSCamLib.report.honest`); fewer than two cases: no interval.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from .honest import RESAMPLES, SEED
from .tables import require_columns

FAITHFULNESS_METRICS: dict[str, tuple[str, str]] = {
    "deletion_auc": ("deletion_auc", "deletion AUC (Petsiuk et al. 2018; lower is better)"),
    "insertion_auc": ("insertion_auc", "insertion AUC (Petsiuk et al. 2018; higher is better)"),
    "average_drop": ("drop", "average drop in confidence, fraction (Chattopadhay et al. 2018; lower is better)"),
    "increase_rate": (
        "increase",
        "increase in confidence, share of slices (Chattopadhay et al. 2018; higher is better)",
    ),
    "pointing_accuracy": ("pointing", "pointing game accuracy (Zhang et al. 2016; higher is better)"),
    "energy_share": ("energy", "energy-based pointing game share (Wang et al. 2020; higher is better)"),
}
"""Table column -> (row column it averages, what it is)."""


def _mean_interval(values: np.ndarray, resamples: int, seed: int) -> tuple[float, float, float]:
    """Mean of per-case ``values`` and its percentile bootstrap 95 % interval (NaN interval below two cases)."""
    from scipy.stats import bootstrap

    if len(values) == 0:
        return math.nan, math.nan, math.nan
    mean = float(values.mean())
    if len(values) < 2:
        return mean, math.nan, math.nan
    with np.errstate(invalid="ignore", divide="ignore"):
        interval = bootstrap(
            (values,),
            np.mean,
            vectorized=True,
            n_resamples=resamples,
            method="percentile",
            random_state=np.random.default_rng(seed),
        ).confidence_interval
    return mean, float(interval.low), float(interval.high)


def faithfulness_table(rows: pd.DataFrame, resamples: int = RESAMPLES, seed: int = SEED) -> pd.DataFrame:
    """One row per model x method: ``cases``, ``slices`` and for each metric of :data:`FAITHFULNESS_METRICS`
    its value, ``<metric>_low``, ``<metric>_high`` and ``<metric>_cases`` (the cases where it applies)."""
    require_columns(rows, ["case", "model", "method", *(c for c, _ in FAITHFULNESS_METRICS.values())], "faithfulness")
    out = []
    for (model, method), group in rows.groupby(["model", "method"], sort=True):
        means = group.groupby("case")[[c for c, _ in FAITHFULNESS_METRICS.values()]].mean()  # NaN skipped
        row: dict[str, object] = {"model": model, "method": method, "cases": len(means), "slices": len(group)}
        for name, (column, _) in FAITHFULNESS_METRICS.items():
            values = means[column].dropna().to_numpy(np.float64)
            row[name], row[f"{name}_low"], row[f"{name}_high"] = _mean_interval(values, resamples, seed)
            row[f"{name}_cases"] = len(values)
        out.append(row)
    columns = ["model", "method", "cases", "slices"] + [
        f"{name}{suffix}" for name in FAITHFULNESS_METRICS for suffix in ("", "_low", "_high", "_cases")
    ]
    return pd.DataFrame(out, columns=columns)


def faithfulness_display(table: pd.DataFrame) -> pd.DataFrame:
    """The table for the report: ``value [low, high]`` per metric (3 decimals; ``n/a`` where nothing applies)."""

    def cell(row: pd.Series, name: str) -> str:
        if not np.isfinite(row[name]):
            return "n/a"
        if not np.isfinite(row[f"{name}_low"]):
            return f"{row[name]:.3f}"
        return f"{row[name]:.3f} [{row[f'{name}_low']:.3f}, {row[f'{name}_high']:.3f}]"

    shown = table[["model", "method", "cases", "slices"]].copy()
    for name in FAITHFULNESS_METRICS:
        shown[name] = [cell(row, name) for _, row in table.iterrows()]
    return shown


__all__ = ["FAITHFULNESS_METRICS", "faithfulness_display", "faithfulness_table"]
