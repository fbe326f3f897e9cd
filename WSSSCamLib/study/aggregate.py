"""From the units' per-slice counts to the study's tables (see ``docs``: the study table schema).

* The ensemble threshold grid search: for each fold and ensemble, the counts of the fold's
  training cases (role ``train``) are pooled per threshold combination, scored by Ostrowski et al. 2023's
  DSC = 2 mIoU / (1 + mIoU), and the best combination (ties: the first, i.e. lowest thresholds)
  is applied unchanged to the fold's held-out cases.
* The training-case threshold rule of single configurations: for each fold and (model, method), the
  counts of the fold's training cases are pooled per configured threshold (fixed grid, percentile,
  mean, median, Otsu), and the best rule by the same DSC (ties: the first in result order, i.e. the
  lowest fixed threshold) is applied unchanged to the fold's held-out cases: result ``train-threshold``.
* Refined configurations (kind ``refined``: a member map + refinement steps, :mod:`WSSSCamLib.study.refined`)
  get their threshold rule the same way (:data:`CHOSEN_BY_THRESHOLD`).
* The training-side score of every configuration per fold (:func:`training_scores`): what the "best
  configuration" rule of the report ranks; no held-out count enters it.
* ``results``: per case and pooled over all held-out slices ('ALL'), one row per metric.
* ``cases``: one row per case: its fold, label, slices and slices with abnormality, external measures.

Conventions: a slice "with abnormality" has at least one reference voxel; per-slice Dice/IoU of
two empty masks is 1 ("dice_mean_all_slices"); averages over slices with abnormality never meet
an empty reference. Pooled metrics sum TP/FP/FN/TN over every held-out slice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from ..data.datasets import Dataset
from ..data.splits import Folds
from ..masks import grid_search
from ..metrics import dice_from_counts, iou_from_counts, pooled_scores
from ..report.tables import result_sort_key

KEYS = ["model", "method", "result", "kind"]
CHOSEN_BY_THRESHOLD = ("threshold", "refined")
"""Kinds whose rule (the result) is a threshold chosen per fold on the training cases ('train-threshold')."""
COUNTS = ["tp", "fp", "fn", "tn"]


def _counts(frame: pd.DataFrame) -> torch.Tensor:
    """The frame's TP/FP/FN/TN columns as an int64 tensor, rows x 4."""
    return torch.tensor(frame[COUNTS].to_numpy(np.int64))


def _best_by_pooled_dsc(sums: pd.DataFrame) -> tuple[int, np.ndarray]:
    """:func:`~WSSSCamLib.masks.grid_search` over rows of pooled counts (one per candidate, in order)."""
    best, scores = grid_search(_counts(sums)[:, None, :], list(range(len(sums))))
    return best, scores.numpy()


def grid_search_table(slices: pd.DataFrame) -> pd.DataFrame:
    """One row per fold x ensemble x threshold combination with its training-split score; ``chosen`` marks the best."""
    train = slices[(slices["role"] == "train") & (slices["kind"] == "ensemble")]
    if train.empty:
        return pd.DataFrame(columns=["fold", "ensemble", "rule", "t1", "t2", "result", "score", "chosen"])
    pooled = train.groupby(["fold", "model", "result"], sort=False)[COUNTS].sum().reset_index()
    rows = []
    for (fold, ensemble), group in pooled.groupby(["fold", "model"], sort=True):
        group = group.assign(order=group["result"].map(_combo_key)).sort_values("order")
        best, scores = _best_by_pooled_dsc(group)
        for index, (result, score) in enumerate(zip(group["result"], scores)):
            thresholds = _combo_key(result)
            rows.append(
                {
                    "fold": int(fold),
                    "ensemble": ensemble,
                    "rule": ensemble.split("(", 1)[0],
                    "t1": thresholds[0],
                    "t2": thresholds[1] if len(thresholds) > 1 else np.nan,
                    "result": result,
                    "score": float(score),
                    "chosen": index == best,
                }
            )
    return pd.DataFrame(rows)


def _combo_key(result: str) -> tuple[float, ...]:
    return tuple(float(part.split("=", 1)[1]) for part in result.split("|"))


TRAIN_THRESHOLD_COLUMNS = ["fold", "model", "method", "threshold", "score_training_cases", "training_cases", "kind"]


def training_threshold_table(slices: pd.DataFrame) -> pd.DataFrame:
    """Per fold and single (model, method): the threshold rule with the best pooled DSC (Ostrowski et al. 2023)
    on the fold's training cases (ties: the first in result order), its score there and how many training
    cases (each with its reference mask) chose it. Held-out rows are never read."""
    train = slices[(slices["role"] == "train") & slices["kind"].isin(CHOSEN_BY_THRESHOLD)]
    if train.empty:
        return pd.DataFrame(columns=TRAIN_THRESHOLD_COLUMNS)
    cases = train.groupby("fold")["case"].nunique()
    pooled = train.groupby(["fold", "model", "method", "kind", "result"], sort=False)[COUNTS].sum().reset_index()
    rows = []
    for (fold, model, method, kind), group in pooled.groupby(["fold", "model", "method", "kind"], sort=False):
        group = group.assign(order=group["result"].map(result_sort_key)).sort_values("order", kind="stable")
        best, scores = _best_by_pooled_dsc(group)
        rows.append(
            {
                "fold": int(fold),
                "model": model,
                "method": method,
                "threshold": group["result"].iloc[best],
                "score_training_cases": float(scores[best]),
                "training_cases": int(cases[fold]),
                "kind": kind,
            }
        )
    return pd.DataFrame(rows, columns=TRAIN_THRESHOLD_COLUMNS).sort_values(
        ["kind", "model", "method", "fold"], key=_kinds_first, kind="stable"
    )


def _kinds_first(column: pd.Series) -> pd.Series:
    """Sort key: kind 'threshold' before 'refined'; other columns as they are."""
    return column.map({k: i for i, k in enumerate(CHOSEN_BY_THRESHOLD)}) if column.name == "kind" else column


def training_scores(slices: pd.DataFrame, grid: pd.DataFrame, thresholds: pd.DataFrame) -> pd.DataFrame:
    """Per fold and configuration, the pooled DSC on the fold's training cases of the rule chosen there
    (single: :func:`training_threshold_table`; ensemble: the grid search's choice; Empty: its own):
    columns fold, model, method, kind, result (the rule chosen), score, training_cases."""
    rows = []
    train = slices[slices["role"] == "train"]
    cases = train.groupby("fold")["case"].nunique()
    for fold, group in train[train["kind"] == "empty"].groupby("fold"):
        score = float(pooled_scores(_counts(group)).dsc_miou)
        rows.append(
            {"fold": int(fold), "model": "", "method": "empty", "kind": "empty", "result": "empty", "score": score}
        )
    for row in thresholds.itertuples(index=False):
        rows.append(
            {
                "fold": int(row.fold),
                "model": row.model,
                "method": row.method,
                "kind": row.kind,
                "result": row.threshold,
                "score": float(row.score_training_cases),
            }
        )
    if not grid.empty:
        for row in grid[grid["chosen"]].itertuples(index=False):
            rows.append(
                {
                    "fold": int(row.fold),
                    "model": row.ensemble,
                    "method": "ensemble",
                    "kind": "ensemble",
                    "result": row.result,
                    "score": float(row.score),
                }
            )
    table = pd.DataFrame(rows, columns=["fold", "model", "method", "kind", "result", "score"])
    return table.assign(training_cases=table["fold"].map(cases).astype("Int64"))


def test_rows(slices: pd.DataFrame, grid: pd.DataFrame, thresholds: pd.DataFrame | None = None) -> pd.DataFrame:
    """Held-out slice rows; for ensembles only each fold's chosen combination (result renamed 'train-grid');
    with ``thresholds`` (:func:`training_threshold_table`) also, per single (and refined) configuration, the
    rows of each fold's rule chosen on its training cases, as result 'train-threshold'."""
    test = slices[slices["role"] == "test"]
    single = test[test["kind"] != "ensemble"]
    if thresholds is not None and not thresholds.empty:
        chosen = thresholds[["fold", "model", "method", "kind", "threshold"]].rename(columns={"threshold": "result"})
        picked = single[single["kind"].isin(CHOSEN_BY_THRESHOLD)].merge(
            chosen, on=["fold", "model", "method", "kind", "result"]
        )
        single = pd.concat([single, picked.assign(result="train-threshold")[single.columns]], ignore_index=True)
    ensembles = test[test["kind"] == "ensemble"]
    if ensembles.empty or grid.empty:
        return single.reset_index(drop=True)
    chosen = grid[grid["chosen"]][["fold", "ensemble", "result"]].rename(columns={"ensemble": "model"})
    picked = ensembles.merge(chosen, on=["fold", "model", "result"], how="inner")
    picked = picked.assign(result="train-grid")
    return pd.concat([single, picked], ignore_index=True)


def case_counts(test: pd.DataFrame) -> pd.DataFrame:
    """Per held-out case and configuration x result: summed TP/FP/FN/TN, the sum of the per-slice Dice over
    its slices with abnormality and their number, for case-level bootstrap intervals (the report's)."""
    counted = test[test["kind"] != "threshold-free"]
    counts = _counts(counted)
    abnormal = ((counted["tp"] + counted["fn"]) > 0).to_numpy()
    frame = counted[["case", "fold", *KEYS, *COUNTS]].assign(
        dice_abnormal_sum=np.where(abnormal, dice_from_counts(counts).numpy(), 0.0),
        abnormal_slices=abnormal.astype(np.int64),
    )
    return frame.groupby(["case", "fold", *KEYS], sort=False).sum().reset_index()


def with_cross_validated_thresholds(test: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Add, per single model x method, the result 'cv-threshold': for the held-out cases of fold k the
    fixed threshold that maximises the pooled Ostrowski et al. (2023) DSC over the held-out cases of the *other*
    folds (ties: the lowest threshold). Fold k's own cases never choose their threshold, unlike the
    best of the threshold grid, which is chosen on the data it is reported on (an oracle, as the
    seeds report). Returns the rows with the new result, and the chosen threshold per fold."""
    fixed = test[(test["kind"] == "threshold") & test["result"].str.startswith("t=")]
    if fixed.empty or fixed["fold"].nunique() < 2:
        return test, pd.DataFrame(columns=["model", "method", "fold", "threshold", "score_other_folds"])
    sums = fixed.groupby(["model", "method", "result", "fold"], sort=False)[COUNTS].sum().reset_index()
    picked, chosen = [], []
    for (model, method), group in sums.groupby(["model", "method"], sort=False):
        for fold in sorted(group["fold"].unique()):
            others = group[group["fold"] != fold].groupby("result", sort=False)[COUNTS].sum()
            others = others.loc[sorted(others.index, key=lambda r: float(r.split("=", 1)[1]))]
            index, scores = _best_by_pooled_dsc(others)
            best = others.index[index]
            chosen.append(
                {
                    "model": model,
                    "method": method,
                    "fold": int(fold),
                    "threshold": best,
                    "score_other_folds": float(scores[index]),
                }
            )
            rows = fixed[
                (fixed["model"] == model)
                & (fixed["method"] == method)
                & (fixed["fold"] == fold)
                & (fixed["result"] == best)
            ]
            picked.append(rows.assign(result="cv-threshold"))
    return pd.concat([test, *picked], ignore_index=True), pd.DataFrame(chosen)


def results_table(test: pd.DataFrame) -> pd.DataFrame:
    """Tidy metrics: per case (averaged over slices and whole-volume) and 'ALL' (pooled and averaged)."""
    counted = test[test["kind"] != "threshold-free"].copy()
    counts = _counts(counted)
    counted["dice"], counted["iou"] = dice_from_counts(counts).numpy(), iou_from_counts(counts).numpy()
    counted["abnormal"] = (counted["tp"] + counted["fn"]) > 0
    frames = []
    per_case = counted.groupby(["case", "fold", *KEYS], sort=False)
    sums = per_case[COUNTS].sum()
    abnormal = counted[counted["abnormal"]].groupby(["case", "fold", *KEYS], sort=False)[["dice", "iou"]].mean()
    case_metrics = pd.DataFrame(
        {
            "dice_mean_abnormal_slices": abnormal["dice"],
            "iou_mean_abnormal_slices": abnormal["iou"],
            "dice_volume": dice_from_counts(_counts(sums)).numpy(),
            "iou_volume": iou_from_counts(_counts(sums)).numpy(),
            "area_voxels": (sums["tp"] + sums["fp"]).astype(np.float64),
        },
        index=sums.index,
    )
    frames.append(
        case_metrics.reset_index().melt(id_vars=["case", "fold", *KEYS], var_name="metric", value_name="value")
    )

    pooled_rows = []
    for key, group in counted.groupby(KEYS, sort=False):
        scores = pooled_scores(_counts(group))
        values = {
            "pooled_fg_dice": scores.fg_dice,
            "pooled_fg_iou": scores.fg_iou,
            "pooled_miou": scores.miou,
            "pooled_dsc_miou": scores.dsc_miou,
            "dice_mean_abnormal_slices": group.loc[group["abnormal"], "dice"].mean(),
            "iou_mean_abnormal_slices": group.loc[group["abnormal"], "iou"].mean(),
            "dice_mean_all_slices": group["dice"].mean(),
            "slices": float(len(group)),
            "abnormal_slices": float(group["abnormal"].sum()),
        }
        pooled_rows += [dict(zip(KEYS, key), case="ALL", fold=-1, metric=k, value=float(v)) for k, v in values.items()]
    free = test[test["kind"] == "threshold-free"]
    for key, group in free.groupby(KEYS, sort=False):
        abnormal_free = group[(group["tp"] + group["fn"]) > 0]
        pooled_rows.append(
            dict(
                zip(KEYS, key),
                case="ALL",
                fold=-1,
                metric="mean_dice_256_abnormal_slices",
                value=float(abnormal_free["score"].mean()),
            )
        )
        pooled_rows.append(
            dict(
                zip(KEYS, key),
                case="ALL",
                fold=-1,
                metric="mean_dice_256_all_slices",
                value=float(group["score"].mean()),
            )
        )
    frames.append(pd.DataFrame(pooled_rows))
    columns = ["case", "fold", *KEYS, "metric", "value"]
    return pd.concat(frames, ignore_index=True)[columns]


def statistics_table(results: pd.DataFrame, cases: pd.DataFrame, measure: str | None, result: str) -> pd.DataFrame:
    """The study's tests at one threshold ``result`` (scipy.stats), over the single maps (kind 'threshold'):

    * per model x method: Shapiro-Wilk W and p of the per-case CAM areas (is a rank correlation
      warranted?) and, with an external ``measure``, Spearman rho and p of area against it;
    * Kruskal-Wallis H and p of the per-case volume Dice across the methods of each model, and
      across the models for each method.
    """
    import warnings

    from ..metrics.statistics import kruskal_wallis, shapiro_wilk, spearman

    with warnings.catch_warnings():  # constant inputs give NaN, stated in the table, not a warning
        warnings.simplefilter("ignore")
        return _statistics_rows(results, cases, measure, result, kruskal_wallis, shapiro_wilk, spearman)


def _statistics_rows(results, cases, measure, result, kruskal_wallis, shapiro_wilk, spearman) -> pd.DataFrame:
    per_case = results[(results["case"] != "ALL") & (results["result"] == result) & (results["kind"] == "threshold")]
    rows = []
    areas = per_case[per_case["metric"] == "area_voxels"]
    for (model, method), group in areas.groupby(["model", "method"], sort=False):
        values = group.set_index("case")["value"]
        row = {"test": "Shapiro-Wilk of CAM area per case", "model": model, "method": method, "n": len(values)}
        try:
            row["statistic"], row["p"] = shapiro_wilk(values.to_numpy())
        except ValueError:
            row["statistic"], row["p"] = np.nan, np.nan
        rows.append(row)
        if measure is not None:
            joined = cases.set_index("case")[measure].reindex(values.index)
            row = {
                "test": f"Spearman of CAM area vs {measure}",
                "model": model,
                "method": method,
                "n": int(joined.notna().sum()),
            }
            try:
                row["statistic"], row["p"] = spearman(values.to_numpy(), joined.to_numpy(np.float64))
            except ValueError:
                row["statistic"], row["p"] = np.nan, np.nan
            rows.append(row)
    dice = per_case[per_case["metric"] == "dice_volume"]
    for fixed, across in (("model", "method"), ("method", "model")):
        for name, group in dice.groupby(fixed, sort=False):
            groups = {str(k): g["value"].to_numpy() for k, g in group.groupby(across, sort=False)}
            if len(groups) < 2:
                continue
            row = {
                "test": f"Kruskal-Wallis of volume Dice across {across}s",
                "model": name if fixed == "model" else "",
                "method": name if fixed == "method" else "",
                "n": int(sum(len(v) for v in groups.values())),
            }
            try:
                row["statistic"], row["p"] = kruskal_wallis(groups)
            except ValueError:
                row["statistic"], row["p"] = np.nan, np.nan
            rows.append(row)
    return pd.DataFrame(rows, columns=["test", "model", "method", "n", "statistic", "p"])


def cases_table(dataset: Dataset, folds: Folds, slices: pd.DataFrame) -> pd.DataFrame:
    """One row per case: case, fold (holding it out), label, has_mask, slices and abnormal_slices (held-out
    slices, and those with a reference voxel, counted from the Empty rows: FN > 0), then its external measures."""
    fold_of = {case_id: f for f, cases in enumerate(folds.folds) for case_id in cases}  # -1: never held out
    empty = slices[(slices["kind"] == "empty") & (slices["role"] == "test")]
    abnormal = empty.assign(abnormal=empty["fn"] > 0).groupby("case")["abnormal"].agg(["size", "sum"])
    rows = []
    for case in dataset.cases:
        row = {
            "case": case.case_id,
            "fold": fold_of.get(case.case_id, -1),
            "label": case.label,
            "has_mask": case.mask is not None,
            "slices": int(abnormal["size"].get(case.case_id, 0)),
            "abnormal_slices": int(abnormal["sum"].get(case.case_id, 0)),
        }
        rows.append({**row, **case.measures})
    return pd.DataFrame(rows)
