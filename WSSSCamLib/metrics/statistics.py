"""Statistical tests for CAM-derived per-case measures (Syed et al. 2023, Results: Spearman rank correlation with liquid loss after a Shapiro-Wilk check, Kruskal-Wallis H across groups), via scipy.stats.

Inputs are sequences of numbers (lists, NumPy arrays, CPU or device tensors: converted to float64
NumPy at this edge). NaN values are dropped (pairwise for ``spearman``) before testing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats


def _as_array(values, who: str, argument: str) -> np.ndarray:
    if hasattr(values, "detach"):  # torch tensor on any device
        values = values.detach().cpu().numpy()
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{who}: {argument} must be one-dimensional, got shape {array.shape}")
    return array


def spearman(x, y) -> tuple[float, float]:
    """Spearman rank correlation of paired values: (rho, two-sided p).

    Pairs in which either value is NaN are dropped; ValueError when x and y differ in length or
    fewer than 3 complete pairs remain. A constant input gives NaN rho and p (scipy's behaviour).
    """
    a = _as_array(x, "spearman", "x")
    b = _as_array(y, "spearman", "y")
    if a.shape != b.shape:
        raise ValueError(f"spearman: x has {a.size} values but y has {b.size}")
    keep = ~(np.isnan(a) | np.isnan(b))
    if keep.sum() < 3:
        raise ValueError(f"spearman: needs at least 3 pairs without NaN, got {int(keep.sum())}")
    result = stats.spearmanr(a[keep], b[keep])
    return float(result.statistic), float(result.pvalue)


def shapiro_wilk(x) -> tuple[float, float]:
    """Shapiro-Wilk normality test: (W, p). NaN values dropped; ValueError for fewer than 3 values."""
    a = _as_array(x, "shapiro_wilk", "x")
    a = a[~np.isnan(a)]
    if a.size < 3:
        raise ValueError(f"shapiro_wilk: needs at least 3 values without NaN, got {a.size}")
    result = stats.shapiro(a)
    return float(result.statistic), float(result.pvalue)


def kruskal_wallis(groups: Mapping[str, Sequence[float]]) -> tuple[float, float]:
    """Kruskal-Wallis H test across named groups: (H, p).

    groups: name -> values (NaN dropped). ValueError for fewer than 2 groups, for a group with no
    values left, or when all values are identical (H undefined).
    """
    if not isinstance(groups, Mapping):
        raise ValueError(f"kruskal_wallis: groups must be a mapping name -> values, got {type(groups).__name__}")
    if len(groups) < 2:
        raise ValueError(f"kruskal_wallis: needs at least 2 groups, got {len(groups)} ({list(groups)})")
    arrays = []
    for name, values in groups.items():
        a = _as_array(values, "kruskal_wallis", f"group {name!r}")
        a = a[~np.isnan(a)]
        if a.size == 0:
            raise ValueError(f"kruskal_wallis: group {name!r} has no values (after dropping NaN)")
        arrays.append(a)
    pooled = np.concatenate(arrays)
    if np.all(pooled == pooled[0]):
        raise ValueError("kruskal_wallis: all values of all groups are identical, H is undefined")
    result = stats.kruskal(*arrays)
    return float(result.statistic), float(result.pvalue)
