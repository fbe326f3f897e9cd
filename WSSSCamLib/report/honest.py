"""Honest tables: every number that chooses (a threshold, an ensemble's member thresholds, the best
configuration) is computed without the test cases, and every test number carries a case-level
bootstrap 95 % confidence interval.

Inputs (from the study's report stage, see :mod:`WSSSCamLib.study.aggregate`):

* ``training_scores``: per fold and configuration (model, method, kind) the rule chosen on the fold's
  training cases and its pooled DSC (Ostrowski et al. 2023) there;
* ``case_counts``: per held-out case and configuration x result the summed TP/FP/FN/TN, the sum of the
  per-slice Dice over its slices with abnormality and their number;
* ``results``: the tidy results table ('ALL' rows for the cv-threshold and oracle columns).

The best configuration (:func:`best_configurations`) is the one whose chosen rule has the highest mean
over folds of the training-case pooled DSC; configurations within ``TIE`` of it are all listed, none is
picked arbitrarily. Refined CAMs (kind ``refined``: a map + refinement steps) compete among themselves
for the "best refined CAM" by the same rule, beside the best CAM (single maps and ensembles). The a priori
variant (:data:`A_PRIORI`) uses no mask at all: the fixed threshold t = 0.50, set before any data was seen
(p95 where t = 0.50 was not computed). The oracle (the best rule on the test cases themselves) is only
ever an upper bound column.

Intervals: ``scipy.stats.bootstrap`` over held-out cases (paired: the configuration and Empty resample
the same cases), percentile method, ``RESAMPLES`` resamples, seeded (``SEED``).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import torch

from ..metrics import pooled_score_columns
from .tables import MAIN_METRIC, POOLED_ROW, SEGMENTATION, config_label, pooled_wide, require_columns

A_PRIORI = ("t=0.50", "p95")
"""The mask-free rule, fixed before seeing data: the first of these the study computed."""
TIE = 1e-9
"""Training scores closer than this to the best count as tied (identical maps give identical counts)."""
RESAMPLES = 2000
SEED = 0
COUNTS = ["tp", "fp", "fn", "tn"]
CHOSEN = {
    "empty": "empty",
    "threshold": "train-threshold",
    "ensemble": "train-grid",
    "refined": "train-threshold",
    "segmentation": "argmax",
}
"""The result that holds each kind's test rows under the rule chosen on the training cases."""
METRICS = ("dsc", "fg_dice", "dice_abnormal", "dice_case")
"""Headline metrics: pooled DSC (Ostrowski et al. 2023), pooled foreground Dice, mean Dice over the
slices with abnormality, mean per-case (volume) Dice."""
METRIC_NAMES = {
    "dsc": "pooled DSC (Ostrowski et al. 2023)",
    "fg_dice": "pooled foreground Dice",
    "dice_abnormal": "mean Dice, slices with abnormality",
    "dice_case": "mean per-case Dice",
}


def a_priori_result(results: pd.DataFrame) -> str | None:
    """The a priori rule (:data:`A_PRIORI`) among the results computed, or None."""
    present = set(results["result"].astype(str))
    return next((r for r in A_PRIORI if r in present), None)


def mean_training_scores(training_scores: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: the mean over folds of the training-case score of its chosen rule, the rules
    chosen (one rule, or each fold's in fold order), the folds and the training cases per fold."""
    require_columns(training_scores, ("fold", "model", "method", "kind", "result", "score"), "training scores")
    rows = []
    for (model, method, kind), group in training_scores.groupby(["model", "method", "kind"], sort=False):
        per_fold = group.sort_values("fold")["result"].astype(str).tolist()
        if len(set(per_fold)) == 1:
            rules = per_fold[0] + (f" (all {len(per_fold)} folds)" if len(per_fold) > 1 else "")
        else:
            rules = "per fold: " + "; ".join(per_fold)
        cases = group["training_cases"] if "training_cases" in group else pd.Series(dtype=float)
        rows.append(
            {
                "model": model,
                "method": method,
                "kind": kind,
                "training_score": float(group["score"].mean()),
                "rules": rules,
                "folds": int(group["fold"].nunique()),
                "training_cases": int(cases.max()) if len(cases.dropna()) else 0,
            }
        )
    return pd.DataFrame(rows)


REFINED = "refined"
"""The kind of refined CAMs (:mod:`WSSSCamLib.study.refined`)."""
SEGMENTATION_RULE = "U-Net trained on the fold's training cases, argmax"
"""What the 'rule chosen' cell of a segmentation network says (its pseudo-labels' source is chosen per fold on the
fold's training cases; the supervised U-Net uses their reference masks)."""


def best_configurations(training_scores: pd.DataFrame, tie: float = TIE, refined: bool = False) -> pd.DataFrame:
    """The best configuration(s) by the rule that never looks at test results: the highest mean over folds
    of the training-case pooled DSC of each configuration's chosen rule (Empty excluded), among the CAMs
    (single maps and ensembles), or with ``refined`` among the refined CAMs. Every configuration within
    ``tie`` of the best is returned (ties are listed, not broken)."""
    means = mean_training_scores(training_scores)
    if means.empty:
        return means
    among = (means["kind"] == REFINED) if refined else (means["kind"] != REFINED)
    candidates = means[(means["kind"] != "empty") & among & means["training_score"].notna()]
    if candidates.empty:
        return candidates
    best = candidates["training_score"].max()
    return candidates[candidates["training_score"] >= best - tie].reset_index(drop=True)


def _statistics(arrays: dict[str, np.ndarray], axis: int = -1) -> dict[str, np.ndarray]:
    """The headline metrics of per-case arrays (resampled along ``axis``)."""
    summed = np.stack([arrays[c].sum(axis=axis) for c in COUNTS], axis=-1)
    pooled = pooled_score_columns(torch.from_numpy(summed.astype(np.float64)))
    case = np.stack([arrays[c] for c in COUNTS], axis=-1).astype(np.float64)
    tp, fp, fn = case[..., 0], case[..., 1], case[..., 2]
    denominator = 2 * tp + fp + fn
    case_dice = np.where(denominator > 0, 2 * tp / np.maximum(denominator, 1), 1.0)
    abnormal = arrays["abnormal_slices"].sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        dice_abnormal = np.where(abnormal > 0, arrays["dice_abnormal_sum"].sum(axis=axis) / abnormal, np.nan)
    return {
        "dsc": pooled["dsc_miou"].numpy(),
        "fg_dice": pooled["fg_dice"].numpy(),
        "dice_abnormal": dice_abnormal,
        "dice_case": case_dice.mean(axis=axis),
    }


def _case_arrays(rows: pd.DataFrame, cases: list[str]) -> dict[str, np.ndarray]:
    rows = rows.set_index("case").reindex(cases)
    columns = [*COUNTS, "dice_abnormal_sum", "abnormal_slices"]
    return {c: rows[c].to_numpy(np.float64) for c in columns}


def bootstrap_metrics(
    rows: pd.DataFrame,
    baseline: pd.DataFrame | None = None,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> dict[str, float]:
    """Each headline metric of one configuration's per-case rows (``case_counts`` of one result) with its
    case-level bootstrap 95 % interval (``<metric>``, ``<metric>_low``, ``<metric>_high``); with ``baseline``
    (Empty's rows of the same cases) also each difference to it (``delta_<metric>`` and its interval),
    resampled paired."""
    from scipy.stats import bootstrap

    cases = sorted(rows["case"].unique())
    arrays = _case_arrays(rows, cases)
    names = list(arrays)
    out: dict[str, float] = {}
    point = _statistics(arrays)
    base_arrays = _case_arrays(baseline, cases) if baseline is not None else None
    base_point = _statistics(base_arrays) if base_arrays is not None else None
    data = [arrays[n] for n in names] + ([base_arrays[n] for n in names] if base_arrays is not None else [])
    for metric in METRICS:
        out[metric] = float(point[metric])
        jobs = [("", False)] + ([("delta_", True)] if base_arrays is not None else [])
        for prefix, versus in jobs:
            if versus:
                out[f"{prefix}{metric}"] = float(point[metric] - base_point[metric])

            def statistic(*samples, axis=-1, metric=metric, versus=versus):
                own = _statistics(dict(zip(names, samples[: len(names)])), axis)[metric]
                if not versus:
                    return own
                return own - _statistics(dict(zip(names, samples[len(names) :])), axis)[metric]

            if len(cases) < 2 or not np.isfinite(out[f"{prefix}{metric}"]):
                low = high = math.nan
            else:
                with np.errstate(invalid="ignore", divide="ignore"):
                    interval = bootstrap(
                        data,
                        statistic,
                        paired=True,
                        vectorized=True,
                        n_resamples=resamples,
                        method="percentile",
                        random_state=np.random.default_rng(seed),
                    ).confidence_interval
                low, high = float(interval.low), float(interval.high)
            out[f"{prefix}{metric}_low"], out[f"{prefix}{metric}_high"] = low, high
    return out


def _rows_of(case_counts: pd.DataFrame, model: str, method: str, kind: str, result: str) -> pd.DataFrame:
    return case_counts[
        (case_counts["model"] == model)
        & (case_counts["method"] == method)
        & (case_counts["kind"] == kind)
        & (case_counts["result"] == result)
    ]


def _oracle(results: pd.DataFrame, model: str, method: str, kind: str) -> tuple[float, str]:
    """The best pooled DSC over the configuration's rules on the test cases themselves (an upper bound)."""
    wide = pooled_wide(results)
    rows = wide[(wide["model"] == model) & (wide["method"] == method) & (wide["kind"] == kind)]
    rows = rows[~rows["result"].isin(["train-threshold", "cv-threshold", "train-grid"]) & rows[MAIN_METRIC].notna()]
    if rows.empty:
        return math.nan, ""
    best = rows.loc[rows[MAIN_METRIC].idxmax()]
    return float(best[MAIN_METRIC]), str(best["result"])


def _pooled(results: pd.DataFrame, model: str, method: str, kind: str, result: str, metric: str) -> float:
    rows = results[
        (results["case"].astype(str) == POOLED_ROW)
        & (results["model"] == model)
        & (results["method"] == method)
        & (results["kind"] == kind)
        & (results["result"] == result)
        & (results["metric"] == metric)
    ]
    return float(rows["value"].iloc[0]) if not rows.empty else math.nan


def headline_table(
    results: pd.DataFrame,
    case_counts: pd.DataFrame,
    training_scores: pd.DataFrame,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> pd.DataFrame:
    """One row per configuration (Empty, each single model x method, each ensemble, each refined CAM): the
    rule chosen on the training cases (per fold), its mean training-case DSC, ``best`` (the best CAM(s) by
    that score, ties all marked), ``best_refined`` (the best refined CAM(s), likewise), the headline metrics on the held-out cases under that rule with bootstrap
    95 % intervals and their differences to Empty; for single configurations also the a priori rule
    (no masks), cv-threshold where the study has it, and the oracle (best rule on the test cases: an
    upper bound, never a choice)."""
    require_columns(case_counts, ("case", "model", "method", "kind", "result", *COUNTS), "case counts")
    means = mean_training_scores(training_scores).set_index(["model", "method", "kind"])
    best = {tuple(r) for r in best_configurations(training_scores)[["model", "method", "kind"]].to_numpy()}
    best_refined = best_configurations(training_scores, refined=True)
    best_refined = (
        {tuple(r) for r in best_refined[["model", "method", "kind"]].to_numpy()} if len(best_refined) else set()
    )
    empty_rows = _rows_of(case_counts, "", "empty", "empty", "empty")
    a_priori = a_priori_result(case_counts[case_counts["kind"] == "threshold"])
    configs = list(dict.fromkeys(zip(case_counts["model"], case_counts["method"], case_counts["kind"])))
    order = {"empty": 0, "threshold": 1, "ensemble": 2, REFINED: 3, SEGMENTATION: 4}
    configs.sort(key=lambda c: order.get(c[2], 3))
    rows = []
    for model, method, kind in configs:
        chosen = CHOSEN.get(kind)
        own = _rows_of(case_counts, model, method, kind, chosen) if chosen else pd.DataFrame()
        if own.empty:
            continue
        key = (model, method, kind)
        row: dict = {
            "configuration": config_label(model, method, kind),
            "model": model,
            "method": method,
            "kind": kind,
            "result": chosen,
            "rule_chosen": means.loc[key, "rules"]
            if key in means.index
            else ("-" if kind == "empty" else (SEGMENTATION_RULE if kind == SEGMENTATION else "")),
            "training_dsc": float(means.loc[key, "training_score"]) if key in means.index else math.nan,
            "best": key in best,
            "best_refined": key in best_refined,
        }
        row.update(bootstrap_metrics(own, None if kind == "empty" else empty_rows, resamples, seed))
        if kind == "threshold":
            if a_priori is not None:
                prior = bootstrap_metrics(
                    _rows_of(case_counts, model, method, kind, a_priori), empty_rows, resamples, seed
                )
                row.update({f"a_priori_{k}": v for k, v in prior.items() if not k.startswith("fg_")})
                row["a_priori_rule"] = a_priori
            row["cv_threshold_dsc"] = _pooled(results, model, method, kind, "cv-threshold", MAIN_METRIC)
        if kind in ("threshold", REFINED):
            row["oracle_dsc"], row["oracle_rule"] = _oracle(results, model, method, kind)
        rows.append(row)
    table = pd.DataFrame(rows)
    table.attrs["a_priori"] = a_priori
    return table


def _interval(row: pd.Series, name: str, signed: bool = False) -> str:
    value = row.get(name, math.nan)
    if value is None or not np.isfinite(value):
        return ""
    low, high = row.get(f"{name}_low", math.nan), row.get(f"{name}_high", math.nan)
    text = f"{value:+.3f}" if signed else f"{value:.3f}"
    if np.isfinite(low) and np.isfinite(high):
        text += f" [{low:+.3f}, {high:+.3f}]" if signed else f" [{low:.3f}, {high:.3f}]"
    return text


def display_table(headline: pd.DataFrame) -> pd.DataFrame:
    """The headline table as text cells: value [95 % CI]; the oracle in a column labelled as an upper bound."""
    a_priori = headline.attrs.get("a_priori") or "a priori"
    rows = []
    for _, row in headline.iterrows():
        best = " (best on training cases)" if row.get("best") else ""
        best += " (best refined on training cases)" if row.get("best_refined") else ""
        shown = {
            "configuration": f"{row['configuration']}{best}",
            "rule chosen on training cases": row["rule_chosen"],
            "training DSC": "" if not np.isfinite(row["training_dsc"]) else f"{row['training_dsc']:.3f}",
            "DSC [95% CI]": _interval(row, "dsc"),
            "DSC - Empty": _interval(row, "delta_dsc", True),
            "fg Dice (pooled)": _interval(row, "fg_dice"),
            "Dice, lesion slices": _interval(row, "dice_abnormal"),
            "per-case Dice": _interval(row, "dice_case"),
            "per-case Dice - Empty": _interval(row, "delta_dice_case", True),
            f"a priori ({a_priori}, no masks): DSC": _interval(row, "a_priori_dsc"),
            f"a priori ({a_priori}): Dice, lesion slices": _interval(row, "a_priori_dice_abnormal"),
            "cv-threshold DSC": ""
            if not np.isfinite(row.get("cv_threshold_dsc", math.nan))
            else f"{row['cv_threshold_dsc']:.3f}",
            "oracle, upper bound only (best rule on test cases): DSC": ""
            if not np.isfinite(row.get("oracle_dsc", math.nan))
            else f"{row['oracle_dsc']:.3f} ({row['oracle_rule']})",
        }
        rows.append(shown)
    table = pd.DataFrame(rows)
    empty_columns = [c for c in table.columns if (table[c].astype(str) == "").all()]
    return table.drop(columns=empty_columns)


def headline_sentence(headline: pd.DataFrame, training_masks: int | None = None, folds: int | None = None) -> str:
    """The report's headline: the best configuration(s) chosen on the training cases (ties listed), their
    held-out pooled DSC [95 % CI] against Empty, the masks the choice used, and the a priori variant."""
    if headline.empty:
        return "No configuration has held-out results."
    best = headline[headline["best"]]
    empty = headline[headline["kind"] == "empty"]
    if best.empty:
        return "No configuration has a training-case score to choose by."
    names = [f"{r['configuration']} ({r['rule_chosen']})" for _, r in best.iterrows()]
    first = best.iloc[0]
    tied = f"{len(names)} configurations tie on the training cases: " if len(names) > 1 else ""
    text = (
        f"Best configuration, chosen on the training cases only (highest mean training-case pooled DSC "
        f"{first['training_dsc']:.3f}): {tied}{'; '.join(names)}. On the held-out cases: pooled DSC "
        f"(Ostrowski et al. 2023) {_interval(first, 'dsc')}"
    )
    if len(names) > 1:
        values = sorted({round(float(v), 3) for v in best["dsc"]})
        if len(values) > 1:
            text += f" (the tied configurations score {', '.join(f'{v:.3f}' for v in values)})"
    if not empty.empty:
        text += f" versus {empty.iloc[0]['dsc']:.3f} for Empty (difference {_interval(first, 'delta_dsc', True)})"
    text += (
        f"; Dice on slices with abnormality {_interval(first, 'dice_abnormal')}; 95 % case-level bootstrap intervals."
    )
    if training_masks is not None:
        scope = f" in each of {folds} folds" if folds and folds > 1 else ""
        text += f" The choices used the reference masks of {training_masks} training cases{scope}; no test case chose anything."
    text += _refined_sentence(headline, empty)
    text += _segmentation_sentence(headline)
    a_priori = headline.attrs.get("a_priori")
    if a_priori and "a_priori_dsc" in headline.columns:
        single = headline[headline["kind"] == "threshold"]
        if not single.empty and single["a_priori_dsc"].notna().any():
            text += (
                f" A priori, without any mask ({a_priori} for every map): pooled DSC from "
                f"{single['a_priori_dsc'].min():.3f} to {single['a_priori_dsc'].max():.3f} over the "
                f"{int(single['a_priori_dsc'].notna().sum())} single maps (none singled out by its test result)."
            )
    return text


def _refined_sentence(headline: pd.DataFrame, empty: pd.DataFrame) -> str:
    """The best refined CAM(s) chosen on the training cases and their held-out pooled DSC, or '' without any."""
    if "best_refined" not in headline.columns or not headline["best_refined"].astype(bool).any():
        return ""
    best = headline[headline["best_refined"].astype(bool)]
    first = best.iloc[0]
    names = "; ".join(f"{r['configuration']} ({r['rule_chosen']})" for _, r in best.iterrows())
    tied = f"{len(best)} tie: " if len(best) > 1 else ""
    text = (
        f" Best refined CAM, chosen on the training cases only (training-case pooled DSC "
        f"{first['training_dsc']:.3f}): {tied}{names}; held-out pooled DSC {_interval(first, 'dsc')}"
    )
    if not empty.empty:
        text += f" (difference to Empty {_interval(first, 'delta_dsc', True)})"
    return text + "."


def _segmentation_sentence(headline: pd.DataFrame) -> str:
    """The segmentation networks' held-out pooled DSC [95 % CI] (the segment stage), or '' without any."""
    rows = headline[headline["kind"] == SEGMENTATION]
    if rows.empty:
        return ""
    parts = [f"{r['configuration']} {_interval(r, 'dsc')}" for _, r in rows.iterrows()]
    return (
        " Segmentation networks trained on each fold's training cases, held-out pooled DSC: " + "; ".join(parts) + "."
    )


def training_masks(training_scores: pd.DataFrame) -> int | None:
    """The largest number of training cases (each with its reference mask) any fold's choices used."""
    if "training_cases" not in training_scores or training_scores["training_cases"].dropna().empty:
        return None
    return int(training_scores["training_cases"].dropna().max())


__all__ = [
    "A_PRIORI",
    "a_priori_result",
    "best_configurations",
    "bootstrap_metrics",
    "display_table",
    "headline_sentence",
    "headline_table",
    "mean_training_scores",
    "training_masks",
]
