"""Study figures as PNG files (matplotlib, Agg canvas, no pyplot state): agreement box plots (seed
000 fig. 5), ensemble threshold-grid heatmaps (Ostrowski et al. 2023 fig. 4), a CAM-area correlation heatmap
(Syed et al. 2023 fig. 4A) and metric-versus-threshold curves.

Each function writes its PNG atomically (WSSSCamLib.atomic.atomic_path) and returns the Path.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..atomic import atomic_path
from .tables import (
    POOLED_ROW,
    config_label,
    correlation_matrix,
    fixed_threshold,
    main_table,
    pooled_wide,
    require_columns,
    sorted_results,
)

DPI = 110
_MEMBERS = re.compile(r"^[^(]*\((.*)\)\s*$")


def _save(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    FigureCanvasAgg(fig)
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format="png", dpi=DPI, bbox_inches="tight")
    return path


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="0.4")
    ax.set_xticks([])
    ax.set_yticks([])


def _box_panel(ax, frame: pd.DataFrame, title: str, xlabel: str) -> None:
    groups = list(dict.fromkeys(frame["group"]))
    data = [frame.loc[frame["group"] == g, "value"].dropna().to_numpy(np.float64) for g in groups]
    keep = [(g, d) for g, d in zip(groups, data) if d.size]
    ax.set_title(title)
    if not keep:
        _no_data(ax, "no agreement values")
        return
    positions = np.arange(1, len(keep) + 1)
    ax.boxplot(
        [d for _, d in keep],
        positions=positions,
        widths=0.6,
        showfliers=True,
        medianprops={"color": "tab:red"},
        flierprops={"markersize": 3, "alpha": 0.5},
    )
    for x, (_, d) in zip(positions, keep):
        median = float(np.median(d))
        ax.text(
            x,
            median,
            f"{median:.2f}",
            ha="center",
            va="bottom",
            fontsize=8,
            bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.8},
        )
    ax.set_xticks(positions, [str(g) for g, _ in keep], rotation=30, ha="right")
    ax.set_ylim(-0.03, 1.03)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("mean pairwise IoU")
    ax.grid(axis="y", alpha=0.3)


def agreement_boxplots(agreement: pd.DataFrame, path: str | Path, result: str = "t=0.50") -> Path:
    """Two box-plot panels of per-slice agreement at ``result`` (Syed et al. 2023 fig. 5): (A) across CAM
    methods per model (kind 'methods'), (B) across models per CAM method (kind 'models'); medians
    written on the boxes. Raises ValueError if ``agreement`` has no row at ``result``."""
    require_columns(agreement, ("kind", "group", "result", "value"), "agreement")
    rows = agreement[agreement["result"] == result]
    if rows.empty:
        raise ValueError(
            f"agreement_boxplots: no agreement rows at result {result!r}; "
            f"available: {sorted_results(agreement['result'])}"
        )
    fig = Figure(figsize=(11, 4.5))
    left, right = fig.subplots(1, 2, sharey=True)
    _box_panel(left, rows[rows["kind"] == "methods"], f"(A) across CAM methods per model ({result})", "model")
    _box_panel(right, rows[rows["kind"] == "models"], f"(B) across models per CAM method ({result})", "CAM method")
    right.set_ylabel("")
    fig.tight_layout()
    return _save(fig, path)


def ensemble_members(name: str) -> tuple[str, str]:
    """Member labels from an ensemble name 'rule(a, b)' -> ('a', 'b'); generic labels otherwise."""
    match = _MEMBERS.match(str(name))
    if match:
        parts = [p.strip() for p in match.group(1).split(", ")]
        if len(parts) == 2:
            return parts[0], parts[1]
    return "member 1", "member 2"


def _grid_panel(ax, fig: Figure, panel: pd.DataFrame, ensemble: str, rule: str, averaged: bool) -> None:
    is_mean = rule == "mean" or panel["t2"].isna().all()
    t1s = np.sort(panel["t1"].unique())
    t2s = np.array([math.nan]) if is_mean else np.sort(panel["t2"].dropna().unique())
    scores = np.full((t1s.size, t2s.size), np.nan)
    chosen = np.zeros_like(scores, dtype=np.int64)
    key = ["t1"] if is_mean else ["t1", "t2"]
    for values, group in panel.groupby(key):
        values = values if isinstance(values, tuple) else (values,)
        i = int(np.searchsorted(t1s, values[0]))
        j = 0 if is_mean else int(np.searchsorted(t2s, values[1]))
        scores[i, j] = float(group["score"].mean())
        chosen[i, j] = int(group["chosen"].astype(bool).sum())
    member1, member2 = ensemble_members(ensemble)
    title = ensemble if str(ensemble).startswith(f"{rule}(") else f"{ensemble} [{rule}]"
    if is_mean:
        scores, chosen = scores.T, chosen.T  # one row: t1 along x
        image = ax.imshow(scores, cmap="viridis", aspect="auto", origin="lower")
        ax.set_xticks(range(t1s.size), [f"{t:.2f}" for t in t1s], rotation=90)
        ax.set_yticks([])
        ax.set_xlabel("threshold of the mean map")
    else:
        image = ax.imshow(scores, cmap="viridis", aspect="auto", origin="lower")
        ax.set_xticks(range(t2s.size), [f"{t:.2f}" for t in t2s], rotation=90)
        ax.set_yticks(range(t1s.size), [f"{t:.2f}" for t in t1s])
        ax.set_xlabel(f"threshold {member2}", fontsize=8)
        ax.set_ylabel(f"threshold {member1}", fontsize=8)
    rows, cols = scores.shape
    if rows * cols <= 100:
        finite = scores[np.isfinite(scores)]
        middle = float((finite.min() + finite.max()) / 2) if finite.size else 0.0
        for i in range(rows):
            for j in range(cols):
                if np.isfinite(scores[i, j]):
                    ax.text(
                        j,
                        i,
                        f"{scores[i, j]:.2f}",
                        ha="center",
                        va="center",
                        fontsize=6,
                        color="black" if scores[i, j] > middle else "white",
                    )
    for i, j in zip(*np.nonzero(chosen)):
        ax.add_patch(_cell_box(j, i))
        if averaged and chosen[i, j] > 1:
            ax.text(j + 0.45, i + 0.45, f"x{chosen[i, j]}", ha="right", va="top", fontsize=6, color="red")
    ax.set_title(title, fontsize=9)
    fig.colorbar(image, ax=ax, shrink=0.8, label="score")


def _cell_box(x: float, y: float):
    from matplotlib.patches import Rectangle

    return Rectangle((x - 0.5, y - 0.5), 1.0, 1.0, fill=False, edgecolor="red", linewidth=2.0)


def threshold_grid_heatmap(grid: pd.DataFrame, path: str | Path, fold: int | None = None) -> Path:
    """Heatmap of the ensemble threshold grid (Ostrowski et al. 2023 fig. 4): one subplot per (ensemble, rule),
    y = threshold of the first member (t1), x = threshold of the second (t2), colour = score on the
    training split; the 'mean' rule (t2 NaN) is a one-row strip over t1. ``fold`` None averages the
    score over folds and outlines every cell chosen in some fold (red box, 'xN' when chosen in N > 1
    folds); an int shows that fold only with its chosen cell outlined."""
    require_columns(grid, ("fold", "ensemble", "rule", "t1", "t2", "score", "chosen"), "threshold_grid")
    rows = grid if fold is None else grid[grid["fold"] == fold]
    if rows.empty:
        available = sorted(grid["fold"].unique().tolist())
        raise ValueError(
            f"threshold_grid_heatmap: no grid rows{'' if fold is None else f' for fold {fold}'}; folds: {available}"
        )
    panels = list(dict.fromkeys(zip(rows["ensemble"], rows["rule"])))
    columns = min(3, len(panels))
    lines = math.ceil(len(panels) / columns)
    fig = Figure(figsize=(4.6 * columns, 4.0 * lines))
    axes = np.atleast_1d(fig.subplots(lines, columns, squeeze=False)).ravel()
    for ax, (ensemble, rule) in zip(axes, panels):
        panel = rows[(rows["ensemble"] == ensemble) & (rows["rule"] == rule)]
        _grid_panel(ax, fig, panel, ensemble, rule, averaged=fold is None)
    for ax in axes[len(panels) :]:
        ax.set_visible(False)
    scope = "mean over folds" if fold is None else f"fold {fold}"
    fig.suptitle(f"Ensemble threshold grid on the training split ({scope}); red: chosen", fontsize=10)
    fig.tight_layout()
    return _save(fig, path)


def _stars(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "***" if p < 0.001 else "**" if p < 0.01 else "*" if p < 0.05 else ""


def correlation_heatmap(table: pd.DataFrame, path: str | Path) -> Path:
    """Annotated heatmap of a correlation table (tables.correlation_table, tidy x/y/rho/p) like seed
    000 fig. 4A: rows x, columns y, colour rho in [-1, 1] (RdBu), cells 'rho' plus stars for
    p < 0.05 (*), 0.01 (**), 0.001 (***) off the diagonal; NaN cells left blank."""
    require_columns(table, ("x", "y", "rho", "p"), "correlation table")
    if table.empty:
        raise ValueError("correlation_heatmap: empty correlation table")
    rho, p = correlation_matrix(table, "rho"), correlation_matrix(table, "p")
    values = rho.to_numpy(np.float64)
    fig = Figure(figsize=(1.2 + 1.0 * values.shape[1], 1.0 + 0.55 * values.shape[0] + 1.5))
    ax = fig.subplots()
    image = ax.imshow(np.ma.masked_invalid(values), cmap="RdBu_r", vmin=-1.0, vmax=1.0, aspect="auto")
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            if np.isfinite(values[i, j]):
                colour = "white" if abs(values[i, j]) > 0.6 else "black"
                stars = "" if rho.index[i] == rho.columns[j] else _stars(float(p.iat[i, j]))
                ax.text(j, i, f"{values[i, j]:.2f}{stars}", ha="center", va="center", fontsize=8, color=colour)
    ax.set_xticks(range(values.shape[1]), [str(c) for c in rho.columns], rotation=35, ha="right", fontsize=8)
    ax.set_yticks(range(values.shape[0]), [str(r) for r in rho.index], fontsize=8)
    result = str(table["result"].iloc[0]) if "result" in table.columns else ""
    ax.set_title(f"Spearman rho of per-case CAM area{f' ({result})' if result else ''}", fontsize=9)
    fig.colorbar(image, ax=ax, label="Spearman rho")
    fig.tight_layout()
    return _save(fig, path)


def threshold_curves(results: pd.DataFrame, path: str | Path, metric: str = "pooled_dsc_miou") -> Path:
    """``metric`` ('ALL' rows) versus fixed threshold t, one line per single (model, method); the
    Empty baseline as a dashed black line and each ensemble's best value as a dotted line. Results
    that are not fixed thresholds (otsu, p95, ...) are not on the curves (see the threshold table)."""
    wide = pooled_wide(results)
    if metric not in wide.columns:
        raise ValueError(f"threshold_curves: metric {metric!r} not among the 'ALL' metrics")
    single = wide[(wide["kind"] == "threshold") & wide["result"].map(lambda r: fixed_threshold(r) is not None)]
    if single.empty:
        raise ValueError("threshold_curves: no 'ALL' rows with a fixed threshold ('t=...')")
    fig = Figure(figsize=(10.5, 5.2))
    ax = fig.subplots()
    styles = ("-", "--", "-.", ":")
    markers = ("o", "s", "^", "v", "D", "x", "+", "*", "P", "h")
    for index, ((model, method), group) in enumerate(single.groupby(["model", "method"], sort=False)):
        group = group.assign(_t=group["result"].map(fixed_threshold)).sort_values("_t")
        ax.plot(
            group["_t"],
            group[metric],
            linestyle=styles[index % len(styles)],
            marker=markers[index % len(markers)],
            markersize=4,
            linewidth=1.4,
            color=f"C{index % 10}",
            label=config_label(model, method, "threshold"),
        )
    table = main_table(results[results["case"].astype(str) == POOLED_ROW], metric)
    for _, row in table[table["kind"] == "empty"].iterrows():
        if np.isfinite(row[metric]):
            ax.axhline(row[metric], color="black", linestyle="--", linewidth=1.2, label=f"Empty ({row[metric]:.3f})")
    for _, row in table[table["kind"] == "ensemble"].iterrows():
        if np.isfinite(row[metric]):
            ax.axhline(
                row[metric],
                linestyle=":",
                linewidth=1.2,
                color="0.35",
                label=f"{config_label(row['model'], row['method'], 'ensemble')} ({row['best_result']})",
            )
    ax.set_xlabel("CAM threshold t")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} over all test slices versus threshold (descriptive; no choice)", fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0.0, frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def labelled_panels(panels: list[tuple[str, np.ndarray]], title: str, path: str | Path, inches: float = 3.4) -> Path:
    """RGB images side by side, each under its label, with a title line (e.g. model, method, rule, case,
    slice): the study's example overlays, large enough to see (``inches`` per panel)."""
    fig = Figure(figsize=(inches * len(panels), inches + 0.9))
    axes = np.atleast_1d(fig.subplots(1, len(panels)))
    for ax, (label, rgb) in zip(axes, panels):
        ax.imshow(np.asarray(rgb, dtype=np.uint8), interpolation="nearest")
        ax.set_title(label, fontsize=11)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return _save(fig, path)


__all__ = [
    "agreement_boxplots",
    "labelled_panels",
    "correlation_heatmap",
    "ensemble_members",
    "threshold_curves",
    "threshold_grid_heatmap",
]
